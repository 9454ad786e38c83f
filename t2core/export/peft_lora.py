"""An SVF expert as a PEFT LoRA adapter: what a multi-adapter server (vLLM, LoRAX) loads.

`to_peft(expert, dest, rank)` writes the best rank-r approximation of the expert's change ΔW = U diag(s ⊙
(m − 1)) Vᵀ (paper §3.1-3.2; `t2core.export.lowrank`) as PEFT's two files, `adapter_config.json` and
`adapter_model.safetensors`, plus the package manifest (`t2core.export.package`, kind `peft-lora`) recording
the rank, the tolerance that chose it, and the relative error of ΔW per matrix and over all of them.
`peft.PeftModel.from_pretrained(base, dest)` loads it; with it the base model computes W x + B A x, which is
the expert's W' x up to the rank-r truncation (exactly, to float32 rounding, at full rank).

How the files map to PEFT: for each targeted Linear (weight out × in) `lora_A.weight` is A (r × in) and
`lora_B.weight` is B (out × r), named `base_model.model.<module>.lora_{A,B}.weight`; PEFT adds
B A · lora_alpha / r, and `lora_alpha = r` makes that scale 1, so B A is ΔW_r itself (no rsLoRA, no dropout,
no bias). One rank for every matrix (servers take one max rank; no `rank_pattern`); a matrix of smaller rank
(grouped-query k/v projections) is padded with zeros. Tensors are float32.

A mixture (paper §3.3, z' = Σₖ αₖ zₖ) exports the same way: few-shot adaptation stores it as an ordinary
expert whose z is the mixture, so `to_peft` takes its id; a mixture not stored is `write_adapter` of its
multipliers (`t2core.svf.mixture.mix_scales`), since SVF is linear in z.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from t2core.artifacts import ArtifactStore, atomic_dir
from t2core.errors import ArtifactError, ConfigError
from t2core.experts import ExpertRef
from t2core.export.lowrank import SVD, Truncation, factors, max_rank, smallest_rank, spectra, truncation
from t2core.export.package import PEFT_LORA, check_destination, describe, seal

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
DEFAULT_TOL = 0.05


@dataclass(frozen=True)
class LoraExport:
    """What `to_peft` wrote: where, at which rank (and the rank asked for: `auto`, or a number above the
    largest matrix rank, which is capped), and what that rank loses (`Truncation`)."""

    path: Path
    rank: int
    asked: int | str
    tol: float | None
    truncation: Truncation
    manifest: dict[str, Any]


def stored_factors(expert: ExpertRef, store: ArtifactStore | None = None) -> SVD | None:
    """U, s, V of the matrices `expert` changes, from the store's decomposition of its base weights (verified),
    on the CPU; None when the store has none (`ensure_svd` with the model makes it)."""
    from t2core.svd import KIND, decomposition_key, load_svd

    store = store or ArtifactStore()
    h = expert.header
    key = decomposition_key(h.base_weights_hash, h.svf.get("targets", "mlp"), list(h.ranks))
    return load_svd(key, store) if store.exists(KIND, key) else None


def multipliers(expert: ExpertRef, svd: SVD) -> dict[str, torch.Tensor]:
    """{matrix: m}: the expert's z, and for the sigmoid parameterisation σ(p) with its nuclear-norm rescale
    (`SVFPolicy.scale`), which needs s: what W' = U diag(s ⊙ m) Vᵀ applies."""
    policy = expert.load()
    missing = [n for n in policy.names if n not in svd]
    if missing:
        raise ArtifactError(f"the decomposition given lacks {missing[0]!r}, which {expert.id} changes; use the "
                            "decomposition of the expert's base model and targets.")
    with torch.no_grad():
        return {n: policy.scale(n, svd[n][1].float().cpu()).detach().float() for n in policy.names}


def _factors_of(expert: ExpertRef, svd: SVD | None, store: ArtifactStore | None) -> SVD:
    svd = svd if svd is not None else stored_factors(expert, store)
    if svd is None:
        h = expert.header
        raise ArtifactError(f"the store has no decomposition of {h.model}'s {h.svf.get('targets', 'mlp')} matrices "
                            f"(weights {h.base_weights_hash[:12]}…), which a LoRA export of {expert.id} needs; run "
                            f"`t2 svd --model {h.model} --targets {h.svf.get('targets', 'mlp')}` first.")
    return svd


def rank_for(expert: ExpertRef, tol: float = DEFAULT_TOL, svd: SVD | None = None,
             store: ArtifactStore | None = None) -> int:
    """The smallest LoRA rank whose relative Frobenius error of ΔW, over all the expert's matrices, is ≤ tol
    (`lowrank.smallest_rank`: why over all matrices and not per matrix)."""
    svd = _factors_of(expert, svd, store)
    return smallest_rank(spectra(multipliers(expert, svd), svd), tol)


def to_peft(expert: ExpertRef, dest: str | Path, rank: int | str = "auto", tol: float = DEFAULT_TOL,
            svd: SVD | None = None, store: ArtifactStore | None = None,
            record: dict[str, Any] | None = None) -> LoraExport:
    """Write `expert` as a PEFT LoRA adapter of rank `rank` (a number, or "auto": `rank_for(expert, tol)`) into
    `dest` (new or empty; written whole or not at all). `svd`: the factors of its base weights (default: the
    store's decomposition); `record`: what the exporting T2_HOME knows of the expert (`package.describe`)."""
    dest = check_destination(dest)
    svd = _factors_of(expert, svd, store)
    return write_adapter(multipliers(expert, svd), svd, dest, rank, tol, describe(expert, PEFT_LORA, record))


def check_rank(rank: int | str, option: str = "--rank") -> int | str:
    """`rank` as given on the command line (`option`): "auto" or a whole number ≥ 1."""
    if rank == "auto":
        return rank
    try:
        r = int(rank)
    except (TypeError, ValueError):
        r = 0
    if r < 1 or str(rank).strip() != str(r):
        raise ConfigError(f"{option} {rank!r}: give a whole number >= 1 (e.g. 16) or auto (the smallest rank whose "
                          "relative error of ΔW is under the tolerance, 0.05 by default).")
    return r


def write_adapter(scales: dict[str, torch.Tensor], svd: SVD, dest: str | Path, rank: int | str = "auto",
                  tol: float = DEFAULT_TOL, manifest: dict[str, Any] | None = None) -> LoraExport:
    """The rank-r LoRA of the multipliers `scales` (one expert's, or a mixture's Σₖ αₖ mₖ) on `svd`, written as a
    PEFT adapter into `dest` with `manifest` (a package manifest, `package.describe`) sealed around it."""
    from safetensors.torch import save_file

    from t2core.methods.base import peft_module

    rank = check_rank(rank)
    ds = spectra(scales, svd)
    r = smallest_rank(ds, tol) if rank == "auto" else min(rank, max_rank(ds))
    cut = truncation(ds, r)
    tensors = {}
    for name, d in ds.items():
        a, b = factors(svd[name][0], d, svd[name][2], r)
        tensors[f"base_model.model.{name}.lora_A.weight"] = a
        tensors[f"base_model.model.{name}.lora_B.weight"] = b
    man = manifest or {}
    cfg = peft_module().LoraConfig(r=r, lora_alpha=r, lora_dropout=0.0, bias="none", target_modules=sorted(ds),
                                   task_type="CAUSAL_LM", base_model_name_or_path=man.get("model", {}).get("alias"))
    config = cfg.to_dict()
    config["target_modules"] = sorted(ds)  # PEFT keeps a set: sorted here so the same expert gives the same bytes
    lora = {"rank": r, "asked": rank, "tol": tol if rank == "auto" else None, "max_rank": max_rank(ds),
            "criterion": "relative Frobenius error of ΔW over all matrices", "error": cut.error,
            "errors": cut.errors, "norms": cut.norms, "lora_alpha": r, "scaling": 1.0, "dtype": "float32"}
    dest = check_destination(dest)
    with atomic_dir(dest) as tmp:
        save_file(tensors, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True,
                                                     default=lambda o: sorted(o) if isinstance(o, set) else str(o)))
        sealed = seal(tmp, {**man, "kind": man.get("kind", PEFT_LORA), "lora": lora})
    return LoraExport(dest, r, rank, tol if rank == "auto" else None, cut, sealed)
