"""LoRA by next-token prediction (paper §4.1's LoRA baseline: r 16, alpha 32, dropout 0.05 on q, v)."""

from t2core.methods.base import Method, register_method

register_method(Method(
    name="lora-ntp", product="lora", objective="ntp", selector="lora",
    covers="the NTPConfig (rank, alpha, dropout, target modules, steps, lr, ...)",
    targets=lambda cfg, family: ",".join(cfg["target_modules"]), label="LoRA-NTP", ablated=True))
