"""PEFT baselines by next-token prediction on reference solutions (LoRA-NTP paper §4.1; IA3, DoRA Table 7)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from catalog import Catalog
from catalog import records as rec
from t2core.artifacts import ArtifactStore
from t2core.baselines.peft_ntp import KIND, NTPConfig, NTPResult, plan_ntp, train_ntp
from t2core.models.registry import LoadedModel
from t2core.variants import VariantRef
from t2ops.lifecycle import recorded


@dataclass(frozen=True)
class BaselineRequest:
    ntp: NTPConfig
    data_dir: str | None = None


def plan(req: BaselineRequest, weights_hash: str) -> str:
    """The adapter id (content key of the result: weights, config, data hashes)."""
    return plan_ntp(weights_hash, req.ntp, req.data_dir)[1]


def run(req: BaselineRequest, loaded: LoadedModel, cat: Catalog,
        on_log: Callable[[int, float], None] | None = None) -> NTPResult:
    """Train (or reuse the stored adapter) and record it; a failure leaves no half-written row or adapter."""
    ds, aid = plan_ntp(loaded.weights_hash, req.ntp, req.data_dir)
    rec.record_model(cat, loaded)
    row = rec.train_row(loaded, req.ntp, f"{req.ntp.method}-{aid}", ds.files, req.ntp.seed,
                        produced=VariantRef(req.ntp.method, (aid,)))
    if ArtifactStore().exists(KIND, aid):  # reuse (verified); recorded if the catalog lacks it
        res = train_ntp(loaded, req.ntp, req.data_dir)
        rec.record_adapter(cat, row=row, res=res)
        return res
    return recorded(cat, row, lambda: train_ntp(loaded, req.ntp, req.data_dir, on_log=on_log),
                    lambda res: rec.record_adapter(cat, row=row, res=res))
