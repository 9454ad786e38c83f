"""Any Hugging Face model id or local directory, plus the paper's GPU models.

Weights fingerprints are cached by (file names, sizes, mtimes) so an 8B model is
hashed once, not on every load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from t2core.artifacts import atomic_write_text
from t2core.errors import ModelError
from t2core.hashing import canonical_json, model_weights_hash, sha256_bytes
from t2core.models.registry import LoadedModel, ModelSpec, register_model, set_open_loader
from t2core.paths import cache_dir


def _weight_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in {".safetensors", ".bin", ".gguf"})


def _fingerprint_cache_key(directory: Path) -> str | None:
    files = _weight_files(directory)
    if not files:
        return None
    stat = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return sha256_bytes(canonical_json([str(directory.resolve()), stat]).encode())


def cached_weights_hash(model: torch.nn.Module, directory: Path | None) -> str:
    """`model_weights_hash`, memoised on disk for models loaded from a directory of weight files."""
    key = _fingerprint_cache_key(directory) if directory and directory.is_dir() else None
    cache = cache_dir() / "fingerprints" / f"{key}.json" if key else None
    if cache and cache.is_file():
        return json.loads(cache.read_text())["weights_hash"]
    h = model_weights_hash(model)
    if cache:
        atomic_write_text(cache, json.dumps({"weights_hash": h, "dir": str(directory)}))
    return h


def _device_map() -> str | None:
    return "auto" if torch.cuda.is_available() else None


def load_hf_model(name: str, alias: str | None = None, **_: object) -> LoadedModel:
    """Load `name` (hub id or local dir) in fp32 with `transformers` AutoModelForCausalLM."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not Path(name).expanduser().is_dir() and _snapshot_dir(name) is None:
        _check_hub_reachable(name)  # not cached: fail in one line now, not after a minute of retries (issue 36)
    try:
        tok = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32, device_map=_device_map())
    except OSError as e:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise ModelError(
            f"could not load model {name!r}: {e}. "
            + ("HF_HUB_OFFLINE=1 is set, so only local directories or cached ids work. " if offline else "")
            + "Pass a local directory with config.json + weights, a reachable hub id, or a registered alias."
        ) from e
    directory = Path(name) if Path(name).is_dir() else _snapshot_dir(name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return LoadedModel(
        alias=alias or name,
        model=model,
        tokenizer=tok,
        weights_hash=cached_weights_hash(model, directory),
        source=str(name),
        directory=directory if directory and any(p.suffix == ".safetensors" for p in _weight_files(directory)) else None,
    )


def _check_hub_reachable(name: str, timeout_s: float = 3.0) -> None:
    """A hub id that is not in the local cache needs the hub: offline (HF_HUB_OFFLINE=1, or no connection to
    its host within `timeout_s`) is one clear error at once; online, the download's own errors say the rest."""
    import socket
    from urllib.parse import urlparse

    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    fix = ("pass a registered alias (`t2 models`), a local directory with config.json and weights, or run once "
           "where the hub is reachable to fill the cache")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelError(f"model {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 is set; {fix}.")
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return  # through a proxy a direct connection says nothing: the download's own errors will
    url = urlparse(endpoint)
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout_s).close()
    except OSError as e:
        raise ModelError(f"model {name!r} is not in the local Hugging Face cache and the hub ({endpoint}) cannot be "
                         f"reached ({e.strerror or e}); {fix}.") from None


def _snapshot_dir(name: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except (OSError, ValueError):  # not in the local cache (LocalEntryNotFoundError), or not a hub id (HFValidationError)
        return None


def _hub_loader(hub_id: str):
    def load(alias: str, seed: int = 0) -> LoadedModel:  # noqa: ARG001 - weights are not random
        return load_hf_model(hub_id, alias=alias)

    return load


# The shape fields of each model's public config.json: `t2 plan` plans them on a machine without their weights.
_LLAMA3_8B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
              "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256, "tie_word_embeddings": False}
for _alias, _hub_id, _desc, _config in [
    ("llama3-8b", "meta-llama/Meta-Llama-3-8B-Instruct", "paper's main model (GPU)", _LLAMA3_8B),
    ("mistral-7b", "mistralai/Mistral-7B-Instruct-v0.3", "paper's second model (GPU)", {**_LLAMA3_8B, "vocab_size": 32768}),
    ("llama3-70b", "meta-llama/Meta-Llama-3-70B-Instruct", "paper's large model (multi-GPU)",
     {**_LLAMA3_8B, "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
      "num_attention_heads": 64}),
]:
    register_model(
        ModelSpec(alias=_alias, loader=_hub_loader(_hub_id), description=f"{_hub_id}: {_desc}",
                  needs_gpu=True, extra={"hub_id": _hub_id, "config": _config})
    )

set_open_loader(load_hf_model)
