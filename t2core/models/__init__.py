"""Model registry. Importing this package registers the built-in families."""

from t2core.models import hub, qwen_coder, smollm2, tiny  # noqa: F401 - registration side effects
from t2core.models.registry import (
    LoadedModel,
    ModelSpec,
    get_model_spec,
    load_model,
    model_aliases,
    register_model,
)
from t2core.models.targets import TARGET_SPECS, FamilyTargets, find_targets

__all__ = [
    "TARGET_SPECS", "FamilyTargets", "LoadedModel", "ModelSpec", "find_targets", "get_model_spec",
    "load_model", "model_aliases", "register_model",
]
