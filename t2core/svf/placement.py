"""Where SVF tensors live: the one place that puts them on the device of the weights they change.

The rule (issue 35): every tensor that meets a targeted weight W in a computation lives on W's device,
and is put there here, once:

- `resident_svd(loaded, targets)`: U, s, V of the targeted matrices, each on its weight's device, U and V in
  the storage dtype asked for (float32, or bfloat16 to halve their memory on a GPU; s always float32), read
  from the store (verified once per process, `t2core.svd.verified`) and kept for as long as the model is
  loaded. Every micro-batch, every `attached()`, every variant and every sampler call reuses these tensors:
  no host -> device copy of U or V after the first (for Llama-3-8B's MLP factors, ~29 GB of fp32 each time).
- `place_policy(policy, model)`: each z on its weight's device (kept float32, so its gradient is float32
  whatever the autocast dtype). Call it once, before an optimizer is built over the policy's parameters:
  moving a parameter to another device can replace the Parameter object.
- `place_bank(bank, model)`: an expert bank's stacked multipliers (per-row mixtures, CEM), likewise.

The functions that compute with them (`attached`, `materialised`, `materialised_scales`, `per_row`) move
nothing: they check (`check_placed`, `check_factors`) and say which function to call, so a tensor left on
the CPU is one clear error, not a silent copy per forward. What stays on the host by design: vectors in
transit (`SVFWeights`, sent to or received from another process: moved where they are applied, like token
ids), mixing coefficients α and CEM populations (a few floats, moved where they meet the bank).
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from t2core.errors import ConfigError
from t2core.settings import check_dtype
from t2core.svf.policy import SVFPolicy, _key

SVD = dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # name -> U (out,r), S (r,), V (in,r)

#: model -> {(store root, weights hash, targets, dtype): its resident factors}; dropped with the model.
_RESIDENT: weakref.WeakKeyDictionary[nn.Module, dict[tuple, SVD]] = weakref.WeakKeyDictionary()


def weight_device(model: nn.Module, name: str) -> torch.device:
    """The device of the weight of module `name` (with a multi-GPU device map, each matrix has its own)."""
    return model.get_submodule(name).weight.device


def factor_dtype(dtype: str) -> torch.dtype:
    """The storage dtype of U and V for a setting "float32" or "bfloat16"."""
    return torch.bfloat16 if check_dtype(dtype, "SVD factor dtype") == "bfloat16" else torch.float32


def factor_dtype_setting(setting: str, compute_dtype: str | None = None) -> str:
    """A profile's `factor_dtype` checked (auto, float32 or bfloat16) and, given the run's resolved compute dtype,
    resolved: "auto" holds U and V in bf16 exactly where the forward computes in bf16 (autocast casts them to
    bf16 for every matmul and W' is built in bf16, so the same numbers from half the memory, issue 43)."""
    if setting not in ("auto", "float32", "bfloat16"):
        raise ConfigError(f"factor_dtype={setting!r} must be auto, float32 or bfloat16.")
    if setting != "auto" or compute_dtype is None:
        return setting
    return "bfloat16" if compute_dtype == "bfloat16" else "float32"


def place_svd(svd: SVD, model: nn.Module, dtype: str = "float32") -> SVD:
    """The factors on their weights' devices: U, V in `dtype`, s in float32 (no copy where already there)."""
    low = factor_dtype(dtype)
    out: SVD = {}
    for name, (u, s, v) in svd.items():
        dev = weight_device(model, name)
        uu, ss, vv = u.to(dev, low), s.to(dev, torch.float32), v.to(dev, low)
        if ss.data_ptr() == s.data_ptr() and uu.data_ptr() != u.data_ptr():
            # U and V were converted: s, kept as read, would be the last tensor on the file's mapping and keep
            # the whole file (0.43 GB of float32 factors for SmolLM2's MLP, every page read once) resident for
            # nothing (issue 43); a copy of s (r,) lets the mapping go
            ss = ss.clone()
        out[name] = (uu, ss, vv)
    return out


def _load(loaded, targets: str, store, dtype: str) -> SVD:
    """Decompose or verify (once per process), then read the file matrix by matrix, each factor put on its
    weight's device as soon as it is read (host memory: one matrix's factors, not the whole file)."""
    from safetensors import safe_open

    from t2core.errors import ArtifactError
    from t2core.svd import ensure_svd

    info = ensure_svd(loaded, targets, store=store)  # verified (t2core.svd.verified)
    out: SVD = {}
    try:
        f = safe_open(str(info.path), framework="pt")
    except Exception as e:  # safetensors raises its own error types
        raise ArtifactError(f"SVD file {info.path} cannot be read ({e}); delete {info.path.parent} and rerun "
                            "`t2 svd`.") from e
    with f:
        for name in info.shapes:
            try:
                u, s, v = (f.get_tensor(f"{name}.{part}") for part in "USV")
            except Exception as e:  # noqa: BLE001 - safetensors' own error types
                raise ArtifactError(f"SVD file {info.path} lacks or cannot read the factors of {name!r} ({e}); "
                                    f"delete {info.path.parent} and rerun `t2 svd`.") from e
            out.update(place_svd({name: (u, s, v)}, loaded.model, dtype))
    return out


def resident_svd(loaded, targets: str = "mlp", store=None, dtype: str | None = None) -> SVD:
    """The decomposition of `loaded`'s `targets` on the model's devices, read once per model load, U and V in
    `dtype` (None: the model's `factor_dtype`, which a profile sets when the model is loaded for it).

    The same dict (the same tensors) is returned to every later caller with the same store, targets and
    dtype, as long as the model object lives and its weights have not moved to another device."""
    from t2core.artifacts import ArtifactStore

    store = store or ArtifactStore()
    dtype = dtype or getattr(loaded, "factor_dtype", "float32")
    factor_dtype(dtype)
    per_model = _RESIDENT.setdefault(loaded.model, {})
    key = (str(store.root), loaded.weights_hash, targets, dtype)
    svd = per_model.get(key)
    if svd is None or not _factors_placed(svd, loaded.model):
        per_model.pop(key, None)  # the model moved: its old factors go before the new ones are read
        svd = per_model[key] = _load(loaded, targets, store, dtype)
    return svd


def set_factor_dtype(loaded, dtype: str) -> None:
    """U and V of `loaded` held in `dtype` from now on (a profile's `factor_dtype`); resident factors of another
    dtype are dropped, the new ones read on next use."""
    factor_dtype(dtype)
    if loaded.factor_dtype != dtype:
        _RESIDENT.pop(loaded.model, None)
        loaded.factor_dtype = dtype


def _factors_placed(svd: SVD, model: nn.Module) -> bool:
    return all(t.device == weight_device(model, n) for n, f in svd.items() for t in f)


def check_factors(model: nn.Module, svd: SVD, names) -> None:
    """Refuse factors that are not on their weights' devices (one clear error instead of a copy per use)."""
    for name in names:
        dev = weight_device(model, name)
        for what, t in zip("USV", svd[name], strict=True):
            if t.device != dev:
                raise ConfigError(f"SVD factor {what} of {name!r} is on {t.device}, its weight on {dev}: take the "
                                  "factors from t2core.svf.placement.resident_svd (or place_svd), which puts them "
                                  "on the weights' devices once per model load.")


def place_policy(policy: SVFPolicy, model: nn.Module) -> SVFPolicy:
    """Every z of `policy` on the device of the weight it changes (float32 kept); `policy`, changed in place.

    Call it before building an optimizer over `policy.parameters()` (or loading its state): a parameter moved
    to another device may be a new Parameter object."""
    for name in policy.names:
        k = _key(name)
        p = policy.params[k]
        dev = weight_device(model, name)
        if p.device != dev:
            policy.params[k] = nn.Parameter(p.detach().to(dev), requires_grad=p.requires_grad)
    return policy


def check_placed(policy: SVFPolicy, model: nn.Module) -> None:
    """Refuse a policy whose vectors are not on their weights' devices."""
    for name in policy.names:
        p, dev = policy.params[_key(name)], weight_device(model, name)
        if p.device != dev:
            raise ConfigError(f"SVF vector z of {name!r} is on {p.device}, the weight it changes on {dev}: place "
                              "the policy with t2core.svf.placement.place_policy (before building its optimizer).")


def place_bank(bank, model: nn.Module):
    """An `ExpertBank` whose stacked multipliers (K, r) lie on their weights' devices (built as the bank's
    own type: t2core.svf.bank imports this module, not the other way round)."""
    return type(bank)(bank.base_weights_hash, {n: sc.to(weight_device(model, n)) for n, sc in bank.scales.items()})


def check_bank(bank, model: nn.Module) -> None:
    for name, sc in bank.scales.items():
        dev = weight_device(model, name)
        if sc.device != dev:
            raise ConfigError(f"the expert bank's vectors for {name!r} are on {sc.device}, the weight on {dev}: "
                              "place the bank with t2core.svf.placement.place_bank.")
