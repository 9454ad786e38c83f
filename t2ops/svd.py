"""SVD once (paper §3.1): decompose the targeted matrices, store them, record them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from catalog import Catalog
from catalog import records as rec
from t2core.models.registry import LoadedModel
from t2core.models.targets import check_target_spec
from t2core.svd import SVDInfo, decomposition_key, ensure_svd
from t2ops.model import ModelIdent


@dataclass(frozen=True)
class SvdRequest:
    targets: str = "mlp"  # mlp (paper), attn or both
    rebuild: bool = False  # recompute even when stored

    def __post_init__(self) -> None:
        check_target_spec(self.targets)


def plan(req: SvdRequest, ident: ModelIdent) -> str:
    """The decomposition's artifact key."""
    return decomposition_key(ident.weights_hash, req.targets, ident.target_names(req.targets))


def run(req: SvdRequest, loaded: LoadedModel, cat: Catalog,
        progress: Callable[[int, int], None] | None = None) -> tuple[SVDInfo, bool]:
    """(the decomposition, whether the catalog row is new)."""
    info = ensure_svd(loaded, req.targets, rebuild=req.rebuild, progress=progress)
    rec.record_model(cat, loaded)
    new = rec.record_decomposition(cat, info)
    rec.record_svd_run(cat, loaded, info, seed=loaded.seed)
    return info, new
