"""Training (paper §3.2 and the baselines): REINFORCE of SVF experts and LoRA-PG, next-token
prediction of LoRA/IA3/DoRA and SVF-NTP.

Importing the package registers the NTP trainers (`peft_ntp`, `svf_ntp`) and the rollout kinds.
"""

from t2core.training import choice, peft_ntp, svf_ntp  # noqa: F401 - registration side effects
