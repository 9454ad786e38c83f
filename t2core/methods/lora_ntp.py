"""LoRA by next-token prediction (paper §4.1's LoRA baseline: r 16, alpha 32, dropout 0.05 on q, v)."""

from t2core.methods.base import Method, peft_module, register_method


def lora_config(cfg, family, dora: bool = False):
    """LoRA (or DoRA) on `cfg.target_modules` with its rank, alpha and dropout."""
    return peft_module().LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                    target_modules=list(cfg.target_modules), use_dora=dora, task_type="CAUSAL_LM")


register_method(Method(
    name="lora-ntp", product="lora", objective="ntp", selector="lora",
    covers="the NTPConfig (rank, alpha, dropout, target modules, steps, lr, ...)",
    targets=lambda cfg, family: ",".join(cfg["target_modules"]), label="LoRA-NTP", ablated=True,
    peft=lora_config))
