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


#: The names of Llama's modules (the default of a family that registers no names of its own).
LLAMA_TARGETS = FamilyTargets(
    mlp=("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
    attn=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
)

_FAMILIES: dict[str, FamilyTargets] = {}  # transformers' `config.model_type` -> its module names


def register_family(model_type: str, targets: FamilyTargets) -> FamilyTargets:
    """A family's module names, by the `model_type` of its transformers config (t2core/models/families/)."""
    if model_type in _FAMILIES:
        raise ValueError(f"model family {model_type!r} is already registered")
    _FAMILIES[model_type] = targets
    return targets


def family_of(model: torch.nn.Module) -> FamilyTargets:
    """The module names of `model`'s family, from its config's `model_type`; a family that registered none
    gets Llama's, and `find_targets` says so in one line when they do not match."""
    return _FAMILIES.get(getattr(getattr(model, "config", None), "model_type", ""), LLAMA_TARGETS)


def family_names() -> list[str]:
    return sorted(_FAMILIES)


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
            "register the model family's module names (register_family in t2core/models/families/)."
        )
    return found
