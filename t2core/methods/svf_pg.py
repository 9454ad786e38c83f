"""SVF by REINFORCE (paper §3.2): z per matrix, ±1 rewards with a KL penalty; the paper's experts."""

from t2core.methods.base import Method, register_method

register_method(Method(
    name="svf-pg", product="svf", objective="pg", selector="svf",
    covers="the RLConfig's identity fields (its SVF settings included) and the rollouts' engine",
    targets=lambda cfg, family: cfg["svf"]["targets"], label="SVF-PG", ablated=True))
