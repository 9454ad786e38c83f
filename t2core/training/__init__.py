"""Training (paper §3.2 and the baselines): REINFORCE of SVF experts and LoRA-PG, next-token
prediction of LoRA/IA3/DoRA and SVF-NTP.

Importing the package imports every module of it, which registers the NTP trainers (`peft_ntp`,
`svf_ntp`), the policies and the rollout kinds.
"""

from t2core.registry import import_submodules

import_submodules(__name__, __path__)  # every module registers what it defines: a new trainer is one file
