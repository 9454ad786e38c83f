"""IA3 by next-token prediction (Table 7): learned rescaling of keys, values and the MLP's input."""

from t2core.methods.base import Method, register_method

register_method(Method(
    name="ia3", product="ia3", objective="ntp", selector="ia3",
    covers="the NTPConfig (steps, lr, shots, ...)", targets=lambda cfg, family: ",".join(family.ia3), label="IA3"))
