"""IA3 by next-token prediction (Table 7): learned rescaling of keys, values and the MLP's input."""

from t2core.methods.base import Method, peft_module, register_method


def ia3_config(cfg, family):
    """IA3 on the model family's key, value and feed-forward modules."""
    return peft_module().IA3Config(target_modules=list(family.ia3), feedforward_modules=list(family.ia3_feedforward),
                                   task_type="CAUSAL_LM")


register_method(Method(
    name="ia3", product="ia3", objective="ntp", selector="ia3",
    covers="the NTPConfig (steps, lr, shots, ...)", targets=lambda cfg, family: ",".join(family.ia3), label="IA3", peft=ia3_config))
