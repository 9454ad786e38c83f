"""Model registry: alias -> how to load it and which matrices SVF targets.

Adding a model family is one file that calls `register_model(...)` (add a family, don't edit the loader).
Anything that is not a registered alias is treated as a Hugging Face id or a local
directory and loaded by the open-name loader, which `hub.py` installs (`set_open_loader`): the
registry stays below the loaders that register into it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from t2core.errors import ModelError
from t2core.memory import bound_kernel_cache
from t2core.models.targets import LLAMA_TARGETS, FamilyTargets, family_of
from t2core.registry import Registry


@dataclass
class LoadedModel:
    """A causal LM with its tokenizer and provenance."""

    alias: str
    model: torch.nn.Module
    tokenizer: object
    weights_hash: str  # sha256 of the state dict: keys experts and SVD artifacts to this exact model
    source: str  # where the weights came from (file path / hub id / "random:seed")
    family: FamilyTargets = LLAMA_TARGETS  # set by `load_model` from the model's config (t2core/models/families/)
    seed: int = 0  # what `load_model` was given (random-init models depend on it): a copy elsewhere reloads it
    directory: Path | None = None  # config + safetensors holding exactly these weights, if any (a server loads it)
    factor_dtype: str = "float32"  # storage dtype of its resident SVD factors U, V (a profile's factor_dtype)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


@dataclass(frozen=True)
class ModelSpec:
    alias: str
    loader: Callable[..., LoadedModel]  # loader(alias=..., seed=...) -> LoadedModel
    description: str
    needs_gpu: bool = False
    extra: dict = field(default_factory=dict)


_REGISTRY: Registry[ModelSpec] = Registry(
    "model alias", hint="Pass a registered alias, a local model directory, or a Hugging Face id like 'org/name'."
)


_OPEN_LOADER: list[Callable[..., LoadedModel]] = []  # loads a hub id or local directory; set by hub.py


def register_model(spec: ModelSpec) -> ModelSpec:
    return _REGISTRY.register(spec.alias, spec)


def set_open_loader(loader: Callable[..., LoadedModel]) -> None:
    """The loader of names that are no registered alias (`loader(name, alias=name)`)."""
    _OPEN_LOADER[:] = [loader]


def model_aliases() -> list[str]:
    return _REGISTRY.names()


def get_model_spec(alias: str) -> ModelSpec:
    return _REGISTRY.get(alias)


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def _on_gpu() -> bool:
    """Models go to the GPU where there is one, unless T2_DEVICE=cpu (their weights hash is taken before)."""
    import os

    return torch.cuda.is_available() and os.environ.get("T2_DEVICE", "auto") != "cpu"


def check_model_name(name: str) -> str:
    """`name` is a registered alias, a local directory or has the form of a hub id (checked without loading:
    before a command does other work); otherwise one line listing the aliases."""
    if name not in _REGISTRY and not (_OPEN_LOADER and (Path(name).expanduser().is_dir() or _looks_like_hub_id(name))):
        _REGISTRY.get(name)  # raises UnknownNameError
    return name


def load_model(name: str, *, seed: int = 0) -> LoadedModel:
    """Load a registered alias, a local model directory, or a Hugging Face hub id (fp32, eval mode, frozen)."""
    bound_kernel_cache()  # before the model's first kernel (t2core/memory.py)
    if name not in _REGISTRY and _OPEN_LOADER and (Path(name).expanduser().is_dir() or _looks_like_hub_id(name)):
        loaded = _OPEN_LOADER[0](name, alias=name)
    else:  # an unknown name raises UnknownNameError here
        loaded = _REGISTRY.get(name).loader(alias=name, seed=seed)
    if not isinstance(loaded.model, torch.nn.Module):
        raise ModelError(f"loader for {name!r} returned {type(loaded.model).__name__}, not a torch module")
    loaded.seed = seed
    loaded.family = family_of(loaded.model)  # the module names every target spec and adapter use
    if _on_gpu() and next(loaded.model.parameters()).device.type == "cpu":
        loaded.model.to("cuda")  # this process's GPU (a Dask worker sees only its own: CUDA_VISIBLE_DEVICES)
    loaded.model.eval()
    loaded.model.requires_grad_(False)  # base weights are frozen: only SVF vectors (or adapters) train
    return loaded
