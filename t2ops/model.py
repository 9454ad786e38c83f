"""The identity of a loaded model, as operations plan with it (no model needed once known)."""

from __future__ import annotations

from dataclasses import dataclass

from t2core.models.registry import LoadedModel
from t2core.models.targets import find_targets

TARGET_SPECS = ("mlp", "attn", "both")


@dataclass(frozen=True)
class ModelIdent:
    """Who the model is: enough to compute every run id and artifact key without its weights."""

    name: str  # what was asked for: alias, HF id or directory
    seed: int  # what `load_model` was given (random-init models depend on it)
    alias: str
    weights_hash: str
    n_params: int
    targets: tuple[tuple[str, tuple[str, ...]], ...]  # (target spec, the matrix names it selects)
    ranks: tuple[tuple[str, int], ...] = ()  # (matrix, min(out, in)) of every targetable matrix: SVF vector lengths
    factor_dtype: str = "float32"  # how the stages hold its SVD factors (the profile's factor_dtype)

    def target_names(self, spec: str) -> list[str]:
        return list(dict(self.targets)[spec])

    def target_ranks(self, spec: str) -> dict[str, int]:
        """{matrix: length of its SVF vector} for the matrices `spec` selects, in model order."""
        r = dict(self.ranks)
        return {n: r[n] for n in self.target_names(spec)}


def ident_of(loaded: LoadedModel, name: str | None = None) -> ModelIdent:
    names = tuple((spec, tuple(find_targets(loaded.model, loaded.family, spec))) for spec in TARGET_SPECS)
    ranks = tuple((n, min(m.weight.shape)) for n, m in find_targets(loaded.model, loaded.family, "both").items())
    return ModelIdent(name or loaded.alias, loaded.seed, loaded.alias, loaded.weights_hash, loaded.n_params, names,
                      ranks, loaded.factor_dtype)
