"""Run profiles as data (settings live here, not in code paths): which model, which slices, which
generation settings, resolved into each operation's typed config.

- `tiny`: tiny-random, a few samples per benchmark, seconds; for CI and flow tests.
- `smol`: the embedded SmolLM2-135M on small slices; the README default on a laptop CPU.
- `paper`: Llama-3-8B-Instruct on the full test sets (paper §4); needs a GPU.
Adding a profile is one module that calls `register_profile(Profile(...))`: every module here is imported.
"""

from t2core.profiles.settings import (
    ABLATION_LORA_MODULES,
    PAPER_STRATEGIES,
    PAPER_TASKS,
    TRAIN_TASKS,
    AblationSettings,
    AblationVariant,
    AdaptSettings,
    BaselineSlice,
    EvalSlice,
    Profile,
    TrainSlice,
    TransferSettings,
    get_profile,
    profile_names,
    register_profile,
)
from t2core.registry import import_submodules

import_submodules(__name__, __path__)  # each module registers its profile

__all__ = ["ABLATION_LORA_MODULES", "AblationSettings", "AblationVariant", "AdaptSettings", "BaselineSlice", "EvalSlice", "PAPER_STRATEGIES", "PAPER_TASKS", "Profile", "TRAIN_TASKS", "TrainSlice", "TransferSettings", "get_profile", "profile_names", "register_profile"]
