"""Model registry. Importing this package registers the built-in families: every module here is
imported (`import_submodules`), so a new family is one file with one `register_model` call."""

from t2core.models.registry import (
    LoadedModel,
    ModelSpec,
    check_model_name,
    get_model_spec,
    load_model,
    model_aliases,
    register_model,
)
from t2core.models.targets import TARGET_SPECS, FamilyTargets, find_targets
from t2core.registry import import_submodules

import_submodules(__name__, __path__)  # each module registers what it defines

__all__ = [
    "TARGET_SPECS", "FamilyTargets", "LoadedModel", "ModelSpec", "check_model_name", "find_targets", "get_model_spec",
    "load_model", "model_aliases", "register_model",
]
