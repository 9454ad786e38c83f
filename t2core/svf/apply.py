"""Apply an SVF policy to a model, two ways that must agree (tested to < 1e-4 in fp32):

- *factored*: y = U ((s ⊙ z) ⊙ (Vᵀ x)) never builds W' (a different z per request in one
  batch becomes possible; cost ≈ (out + in)·r instead of out·in per token);
- *materialise*: W' = U diag(s ⊙ z) Vᵀ is built once per forward pass and used as a
  plain linear layer (cheapest when one z serves a whole batch).

`attached(...)` swaps targeted Linear modules for `SVFLinear` wrappers (gradients reach z);
`materialised(...)` writes W' into the existing weights without wrappers (fastest for
generation: zero overhead per token) and restores the original weights afterwards.

Neither moves a tensor between devices: the factors come from `placement.resident_svd` (on the
weights' devices, once per model load) and the policy from `placement.place_policy`; both are
checked on entry (t2core/svf/placement.py, the one place where SVF tensors are placed).

Precision: z is float32. Under bf16 autocast the activations Vᵀx are bf16, and the gradient of
s ⊙ z, a sum over every token of the batch, would be reduced and rounded in bf16 by autograd's
own product rule; `scaled` reduces it in float32 instead (see `_ScaleFP32Grad`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from t2core.errors import ArtifactError
from t2core.models.weight_file import WeightFile
from t2core.sampling.base import SVFWeights
from t2core.settings import check_dtype
from t2core.svf.placement import check_factors, check_placed
from t2core.svf.policy import SVFPolicy

SVD = dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # name -> U (out,r), S (r,), V (in,r)


class _ScaleFP32Grad(torch.autograd.Function):
    """a ⊙ ss along a's last axis, computed in a's dtype (bf16 under autocast), with the gradient of the
    float32 vector ss reduced in float32: Σ over all leading positions of g · a, each product and the sum
    in float32 (autograd's rule for `a * ss.to(a.dtype)` would sum in bf16 and round the result to 8 bits).
    Saves the same tensors as that product (a, and the small ss); the float32 copies are transient."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, ss: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, ss)
        return a * ss.to(a.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        a, ss = ctx.saved_tensors
        ga = g * ss.to(g.dtype) if ctx.needs_input_grad[0] else None
        gss = None
        if ctx.needs_input_grad[1]:
            gss = (g.float() * a.float()).reshape(-1, a.shape[-1]).sum(0).to(ss.dtype)  # (r,) in float32
        return ga, gss


def scaled(a: torch.Tensor, ss: torch.Tensor) -> torch.Tensor:
    """a ⊙ ss (ss (r,) broadcast along a's last axis), whose gradient w.r.t. ss is reduced in ss's float32."""
    return a * ss if a.dtype == ss.dtype else _ScaleFP32Grad.apply(a, ss)


def _operand(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A factor as a matmul operand for x: as stored under autocast (which casts what it needs), else in x's
    dtype (bf16-stored factors in an fp32 forward)."""
    if t.dtype == x.dtype or _autocast_on(x.device.type):
        return t
    return t.to(x.dtype)


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:  # a device type autocast does not know (meta): never on
        return False


class SVFLinear(nn.Module):
    """A Linear whose weight is U diag(s ⊙ z) Vᵀ with z from the policy.

    U, s, V are the resident factors themselves (no copy: `attached` checks they are on the weight's device)."""

    def __init__(self, base: nn.Linear, u: torch.Tensor, s: torch.Tensor, v: torch.Tensor, policy: SVFPolicy,
                 name: str, mode: str) -> None:
        super().__init__()
        self.base, self.policy_ref, self.name, self.mode = base, [policy], name, mode  # list: not a submodule
        self.register_buffer("u", u, persistent=False)
        self.register_buffer("s", s, persistent=False)
        self.register_buffer("v", v, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (..., in)
        ss = self.policy_ref[0].scaled_s(self.name, self.s)  # (r,) float32: z and s on the weight's device
        u, v = _operand(self.u, x), _operand(self.v, x)
        if self.mode == "factored":
            h = x @ v  # (..., r), bf16 under autocast
            y = scaled(h, ss) @ u.T  # (..., out); the gradient of z reduced in float32
        else:
            w = scaled(u, ss) @ v.T  # (out, in)
            y = F.linear(x, w)
        if self.base.bias is not None:
            y = y + self.base.bias
        return y


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, child = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), child


def check_compatible(model: nn.Module, svd: SVD, policy: SVFPolicy) -> None:
    for name in policy.names:
        if name not in svd:
            raise ArtifactError(f"policy targets {name!r}, which the decomposition does not contain; "
                                "decompose with the same target spec as the expert.")
        mod = model.get_submodule(name)
        u, s, v = svd[name]
        if not isinstance(mod, nn.Linear) or tuple(mod.weight.shape) != (u.shape[0], v.shape[0]):
            raise ArtifactError(f"module {name!r} has shape {tuple(getattr(mod, 'weight', torch.empty(0)).shape)}, "
                                f"the decomposition has {(u.shape[0], v.shape[0])}: wrong model for this expert.")
        if policy.z(name).shape != s.shape:
            raise ArtifactError(f"expert vector for {name!r} has length {policy.z(name).shape[0]}, "
                                f"the matrix has {s.shape[0]} singular values: wrong model for this expert.")


@contextlib.contextmanager
def attached(model: nn.Module, svd: SVD, policy: SVFPolicy, mode: str | None = None) -> Iterator[nn.Module]:
    """Within the block, targeted Linears are SVFLinear wrappers driven by `policy` (differentiable)."""
    check_compatible(model, svd, policy)
    check_factors(model, svd, policy.names)
    check_placed(policy, model)
    mode = mode or policy.cfg.mode
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        for name in policy.names:
            parent, child = _parent(model, name)
            base = getattr(parent, child)
            setattr(parent, child, SVFLinear(base, *svd[name], policy=policy, name=name, mode=mode))
            swapped.append((parent, child, base))
        yield model
    finally:
        for parent, child, base in reversed(swapped):
            setattr(parent, child, base)


@contextlib.contextmanager
def materialised(model: nn.Module, svd: SVD, policy: SVFPolicy, dtype: str = "float32",
                 origin: Path | None = None) -> Iterator[nn.Module]:
    """Within the block, every targeted weight holds W' = U diag(s ⊙ z) Vᵀ (no autograd).

    This is the expert swap of two-pass inference (paper §3.3), so its cost matters:
    - on the host, given `origin` (the directory of safetensors the model was loaded from, `LoadedModel.directory`),
      W' is written over each weight the file holds exactly and the original is read back from the file after
      (t2core/models/weight_file.py): the targeted weights exist once, not twice (0.32 GB less for SmolLM2's MLP in
      float32, issue 43), for ~0.1 s of reads per swap; without one, or for a weight the file does not hold as it is
      now, the original tensor is set aside and put back untouched (a pointer swap, no clone). Either way an
      exception midway leaves the model as it was;
    - on a GPU, W' is written into the weight in place and the original is set aside on the host, then
      copied back (the targeted weights would otherwise exist twice on the device: 22.5 GB for
      Llama-3-8B's MLP in float32, the difference between fitting one 80 GB GPU or not, `t2 plan`);
    - `dtype="bfloat16"` builds W' with a bf16 GEMM (~3× faster on CPUs with bf16 units).
      Use it only when generation runs under bf16 autocast anyway, where every weight is
      rounded to bf16 before use: W' differs from the fp32 build only by the GEMM's rounding.
    """
    check_compatible(model, svd, policy)
    check_factors(model, svd, policy.names)
    check_placed(policy, model)
    with torch.no_grad():
        scales = {name: policy.scale(name, svd[name][1]).detach() for name in policy.names}
    with _materialise(model, svd, scales, dtype, origin):
        yield model


def svf_weights(policy: SVFPolicy, svd: SVD, base_weights_hash: str) -> SVFWeights:
    """The expert as vectors only, for a sampler that applies it on its own copy of the model."""
    with torch.no_grad():
        return SVFWeights(base_weights_hash, {n: policy.scale(n, svd[n][1]).detach().float().cpu().clone()
                                              for n in policy.names})


@contextlib.contextmanager
def materialised_scales(model: nn.Module, svd: SVD, weights: SVFWeights, dtype: str = "float32",
                        origin: Path | None = None) -> Iterator[nn.Module]:
    """`materialised` for an expert received as vectors (`SVFWeights`): the server side of a
    remote sampler builds W' = U diag(s ⊙ scale) Vᵀ from its own SVD of the same base weights."""
    for name, m in weights.scale.items():
        if name not in svd:
            raise ArtifactError(f"SVF vectors target {name!r}, which this model's decomposition does not contain.")
        if m.shape != svd[name][1].shape:
            raise ArtifactError(f"SVF vector for {name!r} has length {m.shape[0]}, the matrix has "
                                f"{svd[name][1].shape[0]} singular values: vectors for another model.")
    check_factors(model, svd, weights.scale)
    with _materialise(model, svd, weights.scale, dtype, origin):
        yield model


@contextlib.contextmanager
def _materialise(model: nn.Module, svd: SVD, scales: dict[str, torch.Tensor], dtype: str,
                 origin: Path | None = None) -> Iterator[None]:
    check_dtype(dtype, "materialised(dtype)")
    cd = torch.bfloat16 if dtype == "bfloat16" else torch.float32  # the dtype W' is built in
    # (name, module, original or None, how it comes back): "aside" the original tensor is put back (a pointer
    # swap), "device" copied back from the host into the weight, "file" read back from the model's safetensors
    saved: list[tuple[str, nn.Linear, torch.Tensor | None, str]] = []
    source = WeightFile(origin) if origin is not None else None
    try:
        with torch.no_grad():
            for name, m in scales.items():
                if bool(torch.all(m == 1)):  # s ⊙ 1 = s: W itself, exact (U diag(s) Vᵀ only to rounding)
                    continue
                mod = model.get_submodule(name)
                w = mod.weight.data  # (out, in), kept as is and restored below
                u, s, v = svd[name]  # (out, r), (r,), (in, r): resident on w's device (checked by the callers)
                # m: a placed policy's multiplier (already there), or a vector received from another process
                ss = s * m.to(device=w.device, dtype=s.dtype)  # (r,) fp32
                new = ((u.to(cd) * ss.to(cd)) @ v.to(cd).T).to(w.dtype)
                if w.device.type != "cpu":  # the original to the host, W' in its place: one copy on the device
                    saved.append((name, mod, w.to("cpu"), "device"))
                    w.copy_(new)
                elif source is not None and source.matches(f"{name}.weight", w):  # W' over W, W read back after
                    saved.append((name, mod, None, "file"))
                    w.copy_(new)
                else:
                    saved.append((name, mod, w, "aside"))
                    mod.weight.data = new
                del new
        yield
    finally:
        with torch.no_grad():
            lost = []
            try:
                for name, mod, w, how in saved:
                    if how == "device":
                        mod.weight.data.copy_(w)
                    elif how == "file":
                        try:
                            source.restore(f"{name}.weight", mod.weight.data)
                        except OSError as e:  # the others are still put back; this one cannot be
                            lost.append(f"{name} ({e})")
                    else:
                        mod.weight.data = w
            finally:
                if source is not None:
                    source.close()
            if lost:
                raise ArtifactError(f"the original weights of {', '.join(lost)} could not be read back from {origin} "
                                    "after an expert swap: this model now holds an expert's weights there; reload it.")

