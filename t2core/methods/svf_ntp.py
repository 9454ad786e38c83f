"""SVF by next-token prediction on reference solutions (Table 4's ablation of the objective)."""

from t2core.methods.base import Method, register_method

register_method(Method(
    name="svf-ntp", product="svf", objective="ntp", selector="svf",
    covers="the NTPConfig (svf_targets, steps, lr, ...)", targets=lambda cfg, family: cfg["svf_targets"], label="SVF-NTP", ablated=True))
