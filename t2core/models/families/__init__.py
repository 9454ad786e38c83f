"""Model families, one file each: the module names SVF, LoRA and IA3 target in that architecture,
registered by its transformers `model_type` (`t2core.models.targets.register_family`)."""

from t2core.registry import import_submodules

import_submodules(__name__, __path__)
