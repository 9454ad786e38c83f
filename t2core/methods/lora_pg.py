"""LoRA by REINFORCE (LoRA-PG): the SVF experts' training loop on the LoRA of LoRA-NTP."""

from t2core.methods.base import Method, register_method

register_method(Method(
    name="lora-pg", product="lora-pg", objective="pg", selector="lora",
    covers="the RLConfig's identity fields, the rollouts' engine and the LoRA's settings (lora_pg_settings)",
    targets=lambda cfg, family: ",".join(cfg["lora"]["target_modules"]), label="LoRA-PG", ablated=True))
