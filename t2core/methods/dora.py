"""DoRA by next-token prediction (Table 7): LoRA with a learned magnitude per column."""

from t2core.methods.base import Method, register_method
from t2core.methods.lora_ntp import lora_config

register_method(Method(
    name="dora", product="dora", objective="ntp", selector="dora",
    covers="the NTPConfig (rank, alpha, dropout, target modules, steps, lr, ...)",
    targets=lambda cfg, family: ",".join(cfg["target_modules"]), label="DoRA",
    peft=lambda cfg, family: lora_config(cfg, family, dora=True)))
