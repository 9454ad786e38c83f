"""DoRA by next-token prediction (Table 7): LoRA with a learned magnitude per column."""

from t2core.methods.base import Method, register_method

register_method(Method(
    name="dora", product="dora", objective="ntp", selector="dora",
    covers="the NTPConfig (rank, alpha, dropout, target modules, steps, lr, ...)",
    targets=lambda cfg, family: ",".join(cfg["target_modules"]), label="DoRA"))
