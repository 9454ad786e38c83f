"""Training by next-token prediction on reference solutions: the PEFT baselines (LoRA-NTP paper §4.1;
IA3, DoRA Table 7) and SVF-NTP (Table 4's ablation)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from catalog import Catalog
from catalog import records as rec
from t2core.adapters import KIND
from t2core.artifacts import ArtifactStore
from t2core.experts import KIND as EXPERTS
from t2core.models.registry import LoadedModel
from t2core.training.ntp import NTPConfig, NTPResult, plan_ntp, train_ntp
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
    method = req.ntp.method
    row = rec.train_row(loaded, req.ntp, f"{method}-{aid}", ds.files, req.ntp.seed,
                        produced=VariantRef(method, (aid,)) if method != "svf" else VariantRef("svf"))

    def record(res: NTPResult) -> None:  # SVF-NTP's product is known by its content id once trained
        rec.record_adapter(cat, row=replace(row, variant=VariantRef.parse(res.variant(method))), res=res)

    if ArtifactStore().exists(EXPERTS if method == "svf" else KIND, aid):  # reuse (verified); recorded if missing
        res = train_ntp(loaded, req.ntp, req.data_dir)
        record(res)
        return res
    return recorded(cat, row, lambda: train_ntp(loaded, req.ntp, req.data_dir, on_log=on_log), record)
