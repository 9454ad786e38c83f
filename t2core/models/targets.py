"""Which weight matrices SVF adapts (paper §3.2; Table 4 ablates MLP vs attention vs both).

A *target spec* is one of `mlp` (the paper's default), `attn` or `both`. Each model
family maps those names to the projection module suffixes it uses, so a new family
adds one mapping, not a branch here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from t2core.errors import ConfigError

TARGET_SPECS = ("mlp", "attn", "both")


@dataclass(frozen=True)
class FamilyTargets:
    """Module-name suffixes of the adaptable linear layers of one architecture family."""

    mlp: tuple[str, ...]
    attn: tuple[str, ...]
    # IA3 (Table 7) rescales keys, values and the MLP's input, as in PEFT's examples
    ia3: tuple[str, ...] = ("k_proj", "v_proj", "down_proj")
    ia3_feedforward: tuple[str, ...] = ("down_proj",)

    def suffixes(self, spec: str) -> tuple[str, ...]:
        check_target_spec(spec)
        if spec == "mlp":
            return self.mlp
        if spec == "attn":
            return self.attn
        return self.mlp + self.attn


#: Llama, Mistral and Qwen2 all use these names.
LLAMA_TARGETS = FamilyTargets(
    mlp=("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
    attn=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
)


def check_target_spec(spec: str) -> str:
    if spec not in TARGET_SPECS:
        raise ConfigError(
            f"target spec {spec!r} is not one of {', '.join(TARGET_SPECS)}; "
            "use 'mlp' (paper default), 'attn' or 'both'."
        )
    return spec


def find_targets(model: torch.nn.Module, family: FamilyTargets, spec: str) -> dict[str, torch.nn.Linear]:
    """Ordered {module name: Linear} of every targeted matrix in `model`."""
    suffixes = family.suffixes(spec)
    found = {
        name: mod
        for name, mod in model.named_modules()
        if isinstance(mod, torch.nn.Linear) and name.endswith(suffixes)
    }
    if not found:
        raise ConfigError(
            f"no linear layer in {type(model).__name__} ends with any of {suffixes} (target spec {spec!r}); "
            "register the model family with its own module names."
        )
    return found
