"""Move one SVF expert to another model (paper §4.4): map its vectors, apply a control, and return
an ordinary expert of the destination model whose header says where it came from.

The result is evaluated, dispatched and mixed like any expert of the destination: its id hashes the
destination's weights and the mapped vectors, and its header's `config["transfer"]` records the
source expert and model, the mapping (`Mapping.describe`) and the control.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from t2core.experts import ExpertRef
from t2core.svf import ExpertHeader, SVFConfig, SVFPolicy
from t2core.transfer.controls import CONTROLS, neutral_value
from t2core.transfer.mapping import plan_mapping


@dataclass(frozen=True)
class Destination:
    """The model an expert moves to: enough to build its expert without loading it."""

    alias: str
    weights_hash: str
    ranks: dict[str, int]  # {matrix: min(out, in)} of the targets the expert's spec selects


def transfer_expert(src: ExpertRef, dst: Destination, control: str = "ordered", seed: int = 0
                    ) -> tuple[SVFPolicy, ExpertHeader]:
    """The destination expert's vectors and header (not yet written)."""
    apply_control = CONTROLS.get(control)
    policy = src.load()  # verified again against the expert's checksum
    mapping = plan_mapping(dict(src.header.ranks), dst.ranks)
    mapped = mapping.apply(policy.raw_state(), dst.ranks)  # {dst matrix: (r_d,)}
    svf = SVFConfig(**src.header.svf)
    neutral = neutral_value(svf.param)
    vectors = {n: apply_control(v, n, seed, neutral) for n, v in mapped.items()}
    out = SVFPolicy({n: int(v.shape[0]) for n, v in vectors.items()}, svf)
    out.load_raw_state(vectors)
    header = ExpertHeader(
        base_weights_hash=dst.weights_hash, model=dst.alias, task=src.header.task, svf=dict(src.header.svf),
        ranks={n: int(v.shape[0]) for n, v in vectors.items()}, data_files=dict(src.header.data_files),
        config={"transfer": {"source_expert": src.id, "source_model": src.header.model,
                             "source_weights_hash": src.header.base_weights_hash, "control": control, "seed": seed,
                             "mapping": mapping.describe()}},
        metrics=deviation(vectors, neutral), origin="transfer")
    return out, header


def deviation(vectors: dict[str, torch.Tensor], neutral: float | None) -> dict[str, float]:
    """How far the expert is from "no change": mean |z − c| and the root of Σ‖z − c‖² over matrices."""
    devs = [(v.double() - (float(v.mean()) if neutral is None else neutral)) for v in vectors.values()]
    total = sum(int(d.numel()) for d in devs)
    return {"mean_abs_deviation": float(sum(d.abs().sum() for d in devs) / max(total, 1)),
            "deviation_norm": float(torch.sqrt(sum((d ** 2).sum() for d in devs)))}
