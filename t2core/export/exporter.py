"""One export of one expert, whoever asks: `t2 experts export` and the `experts-api` flow both call
`export_expert`, so a package or an adapter is the same bytes from either (issue 37).

Why the model is a callable: a LoRA export needs the decomposition of the expert's base weights. The store
usually has it (the training made it); when it does not, the model is loaded to decompose it, and how it is
loaded (a CLI spinner, a flow's cached model) is the caller's affair, not this module's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2core.errors import ArtifactError, ConfigError
from t2core.experts import ExpertRef
from t2core.export.lowrank import SVD, check_tol
from t2core.export.package import write_package
from t2core.export.peft_lora import DEFAULT_TOL, LoraExport, check_rank, stored_factors, to_peft

FORMATS = ("svf", "peft")  # the expert itself (a package `t2 experts import` reads), or a PEFT LoRA adapter


@dataclass(frozen=True)
class Exported:
    path: Path
    fmt: str
    bytes: int
    lora: LoraExport | None = None  # the rank and what it loses, for a peft export


def check_export(fmt: str, rank: int | str = "auto", tol: float = DEFAULT_TOL) -> int | str:
    """The format, rank and tolerance of an export, checked before anything is read: the rank (a number or
    "auto")."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}.")
    if fmt == "svf" and rank != "auto":
        raise ConfigError(f"--rank {rank} applies to --format peft (a LoRA adapter); an svf package holds the "
                          "expert itself, at full rank.")
    check_tol(tol)
    return check_rank(rank)


def factors_for(ref: ExpertRef, load: Callable[[str], Any],
                status: Callable[[str], contextlib.AbstractContextManager] | None = None) -> SVD:
    """U, s, V of the expert's matrices: the store's decomposition, else made now from its base model,
    `load(alias)` (a LoadedModel), which must have the expert's base weights."""
    from t2core.svd import ensure_svd, load_svd

    svd = stored_factors(ref)
    if svd is not None:
        return svd
    h = ref.header
    loaded = load(h.model)
    if loaded.weights_hash != h.base_weights_hash:
        raise ArtifactError(f"{ref.id} is an expert of weights {h.base_weights_hash[:12]}…, but {h.model!r} loads "
                            f"weights {loaded.weights_hash[:12]}… here, and the store has no decomposition of the "
                            "expert's weights; export it where its base model is.")
    targets = h.svf.get("targets", "mlp")
    with (status or (lambda _: contextlib.nullcontext()))(f"decomposing {h.model}'s {targets} matrices (once)"):
        return load_svd(ensure_svd(loaded, targets))


def export_expert(ref: ExpertRef, dest: str | Path, fmt: str = "svf", rank: int | str = "auto",
                  tol: float = DEFAULT_TOL, record: dict[str, Any] | None = None,
                  load: Callable[[str], Any] | None = None,
                  status: Callable[[str], contextlib.AbstractContextManager] | None = None) -> Exported:
    """Write `ref` into `dest` (new or empty) as `fmt`: an SVF package, or a PEFT LoRA adapter of rank `rank`
    (auto: the smallest whose relative error of ΔW is at most `tol`). `record`: what this T2_HOME knows of the
    expert (`catalog.experts.expert_record`); `load`: how to load its base model when the store has no
    decomposition (a peft export only)."""
    rank = check_export(fmt, rank, tol)
    if fmt == "svf":
        path = write_package(ref, dest, record)
        return Exported(path, fmt, sum(f.stat().st_size for f in path.iterdir()))
    svd = factors_for(ref, load, status) if load is not None else None  # None: the store's, or one clear error
    out = to_peft(ref, dest, rank, tol, svd=svd, record=record)
    return Exported(out.path, fmt, sum(f.stat().st_size for f in out.path.iterdir()), out)
