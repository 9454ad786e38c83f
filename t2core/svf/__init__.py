"""SVF experts (paper §3.2): policy, application to a model, expert files."""

from t2core.svf.apply import (
    SVD,
    SVFLinear,
    attached,
    check_compatible,
    materialised,
    materialised_scales,
    svf_weights,
)
from t2core.svf.expert import ORIGINS, ExpertHeader, expert_origin, load_expert, read_header, save_expert
from t2core.svf.policy import SVFConfig, SVFPolicy


def ranks_of(svd: SVD) -> dict[str, int]:
    """{module name: number of singular values} of a decomposition."""
    return {name: int(s.shape[0]) for name, (_, s, _) in svd.items()}


__all__ = [
    "ORIGINS", "SVD", "ExpertHeader", "expert_origin", "SVFConfig", "SVFLinear", "SVFPolicy", "attached", "check_compatible", "load_expert",
    "materialised", "materialised_scales", "ranks_of", "read_header", "save_expert", "svf_weights",
]
