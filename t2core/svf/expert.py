"""SVF expert files: safetensors of the raw z parameters plus a JSON header.

The header (safetensors metadata key `t2`) records the base model's weights hash, the
target spec and parameterisation, the task, data hashes, training config and metrics,
so loading onto another model (other hash, other shapes) fails with a clear error. It also
records the sha256 of the vectors themselves (`vectors_sha256`), checked on every load, so
a flipped byte in the data, wherever the file lives, is an error rather than a different expert.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from t2core.errors import ArtifactError
from t2core.hashing import tensors_hash
from t2core.svf.policy import SVFConfig, SVFPolicy

FORMAT = "t2-svf-expert-v1"


@dataclass
class ExpertHeader:
    base_weights_hash: str
    model: str
    task: str
    svf: dict[str, Any]  # SVFConfig as a dict
    ranks: dict[str, int]
    data_files: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    format: str = FORMAT
    vectors_sha256: str = ""  # `tensors_hash` of the raw vectors; empty in files written before it existed
    origin: str = ""  # how the vectors were made: one of ORIGINS; empty in files written before it was kept


#: How an SVF expert came to be: REINFORCE (paper §3.2), next-token prediction (Table 4's SVF-NTP), a
#: few-shot CEM mixture of other experts (§3.3), or a transfer from another model (§4.4).
ORIGINS = ("svf-pg", "svf-ntp", "few-shot-mixture", "transfer")


def expert_origin(header: ExpertHeader) -> str:
    """The expert's origin as its header records it; for files written before headers kept it, read
    from the one config key each kind of writer left (the only place this is derived)."""
    if header.origin:
        return header.origin
    for key, origin in (("mixture", "few-shot-mixture"), ("transfer", "transfer"), ("ntp", "svf-ntp")):
        if key in header.config:
            return origin
    return "svf-pg"


def save_expert(path: str | Path, policy: SVFPolicy, header: ExpertHeader) -> Path:
    """Write atomically (temp file + rename); refuses non-finite vectors."""
    state = policy.raw_state()
    for name, t in state.items():
        if not torch.isfinite(t).all():
            raise ArtifactError(f"expert vector for {name!r} contains NaN/inf; refusing to save a broken expert "
                                "(lower the learning rate or enable KL).")
    header = replace(header, vectors_sha256=tensors_hash(state))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in state.items()}, tmp, metadata={"t2": json.dumps(asdict(header))})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_header(path: str | Path) -> ExpertHeader:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"expert file {path} does not exist; train one with `t2 train` or check the path.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return ExpertHeader(**json.loads(meta["t2"]))
    except (KeyError, TypeError, json.JSONDecodeError, OSError, Exception) as e:  # safetensors raises its own types
        raise ArtifactError(f"{path} is not a t2 SVF expert file ({type(e).__name__}: {e}).") from e


def load_expert(path: str | Path, weights_hash: str | None = None) -> tuple[SVFPolicy, ExpertHeader]:
    """Load an expert; with `weights_hash`, refuse one trained on another base model."""
    header = read_header(path)
    if weights_hash is not None and header.base_weights_hash != weights_hash:
        raise ArtifactError(
            f"expert {path} was trained on base model {header.model!r} (weights {header.base_weights_hash[:12]}…), "
            f"not on this model (weights {weights_hash[:12]}…); use an expert trained on this model "
            "(or move this one with `t2 transfer`)."
        )
    policy = SVFPolicy(header.ranks, SVFConfig(**header.svf))
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    missing = set(header.ranks) - set(state)
    if missing:
        raise ArtifactError(f"expert {path} lacks vectors for {sorted(missing)[:3]}…; the file is incomplete.")
    for name, t in state.items():
        if name not in header.ranks or t.shape != (header.ranks[name],):
            raise ArtifactError(f"expert {path}: vector {name!r} has shape {tuple(t.shape)}, header says "
                                f"({header.ranks.get(name)},); the file is corrupted.")
        if not torch.isfinite(t).all():
            raise ArtifactError(f"expert {path}: vector {name!r} contains NaN/inf; retrain the expert.")
    if header.vectors_sha256 and tensors_hash(state) != header.vectors_sha256:
        raise ArtifactError(f"expert {path} is corrupted: its vectors do not match the checksum in its header "
                            f"({header.vectors_sha256[:12]}…); use an intact copy or retrain the expert.")
    policy.load_raw_state(state)
    return policy, header
