"""A stand-in for a GPU on a CPU-only machine: the model on PyTorch's `meta` device, under a guard.

`meta` tensors have shapes and dtypes but no data, so a forward and a backward of Llama-3-8B run in
seconds with no memory, and an op that mixes a `meta` tensor with a CPU one fails as it would mix a
CUDA tensor with a CPU one. PyTorch only enforces that for some ops (elementwise ones); a matmul of a
`meta` and a CPU tensor quietly returns a `meta` result. `OnMeta` closes that gap and the rest:

- any op whose tensor arguments lie on more than one device raises `DeviceMix` (CPU 0-dim scalars and
  CPU indices of `t[idx]` excepted, as CUDA accepts them), and so does a random op given a generator of
  another device than its tensors;
- each host -> device copy that makes a device tensor (`.to`, `.cuda`) is recorded (`h2d`), so a test can
  count the copies of U and V; a copy into an existing device tensor (`copy_` from the CPU onto `meta`: a
  weight put back after an expert's in-place swap) is recorded apart (`h2d_into`);
- what cannot run on `meta` because it needs values is faked and counted: a host read (`item()`,
  `bool()`, `float()`, `int()`, `tolist()`) returns 0 / False / zeros (`reads`), except that a finiteness
  check (`bool(torch.isfinite(x).all())`) passes; and a device -> host copy returns zeros of the right shape
  and dtype (`d2h`; read-only: a view with no memory behind it). The code after such a read runs with a made-up value: what it computes is not checked,
  only where its tensors live.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

_T = torch.Tensor
_READS = {_T.item: 0.0, _T.__bool__: False, _T.__float__: 0.0, _T.__int__: 0, _T.__index__: 0}
_FINITE = {torch.isfinite, _T.isfinite, torch.all, _T.all}  # a finiteness check: its truth is faked as True
_QUERIES = {torch._has_compatible_shallow_copy_type}  # asks about two tensors' types, computes nothing


class DeviceMix(RuntimeError):
    """An op met tensors of two devices (on a GPU: "Expected all tensors to be on the same device")."""


def _tensors(x) -> list[torch.Tensor]:
    return [t for t in tree_flatten(x)[0] if isinstance(t, torch.Tensor)]


class OnMeta(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.h2d: list[tuple[int, ...]] = []  # shapes of host -> device copies that made a tensor, in order
        self.h2d_into: list[tuple[int, ...]] = []  # shapes of host -> device copies into an existing tensor
        self.d2h: list[tuple[int, ...]] = []  # shapes of device -> host copies (faked: zeros)
        self.reads: Counter[str] = Counter()  # host reads of device values (faked)

    def copies_of(self, shapes: set[tuple[int, ...]], min_numel: int) -> int:
        """Host -> device copies of a tensor of one of `shapes` with at least `min_numel` elements."""
        return sum(1 for s in self.h2d if s in shapes and _numel(s) >= min_numel)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if first is not None and first.device.type == "meta":
            if func in _READS:
                self.reads[func.__name__] += 1
                return True if func is _T.__bool__ and getattr(first, "_finite_check", False) else _READS[func]
            if func is _T.tolist:
                self.reads["tolist"] += 1
                return torch.zeros(first.shape, dtype=first.dtype).tolist()
            if func in (_T.to, _T.cpu):
                dev, dtype = (torch.device("cpu"), None) if func is _T.cpu else \
                    torch._C._nn._parse_to(*args[1:], **{k: v for k, v in kwargs.items() if k != "copy"})[:2]
                if dev is not None and dev.type == "cpu":
                    self.d2h.append(tuple(first.shape))
                    # zeros with no memory behind them (a stride-0 view): an 8B model's weights set aside on the
                    # host by an in-place swap would otherwise take 22 GB here
                    return torch.zeros((), dtype=dtype or first.dtype).expand(first.shape)
        if func is _T.copy_:
            dst, src = args[0], args[1]
            if src.device.type == "meta" and dst.device.type == "cpu":
                self.d2h.append(tuple(src.shape))
                return dst
            if src.device.type == "cpu" and dst.device.type != "cpu":
                self.h2d_into.append(tuple(src.shape))
            return func(*args, **kwargs)
        if func in (_T.to, _T.cuda):
            out = func(*args, **kwargs)
            if first.device.type == "cpu" and out.device.type != "cpu":
                self.h2d.append(tuple(first.shape))
            return out
        if func in _QUERIES:
            return func(*args, **kwargs)
        if func is _T.__getitem__:
            checked = [first]
        elif func is _T.__setitem__:
            checked = [first, *_tensors(args[2:])]
        else:
            checked = _tensors((args, kwargs))
        devices = {t.device for t in checked if not (t.device.type == "cpu" and t.dim() == 0)}
        gen = kwargs.get("generator")
        if gen is not None and devices and {gen.device} != devices:
            raise DeviceMix(f"{_name(func)}: a generator on {gen.device} for tensors on devices {_names(devices)}")
        if len(devices) > 1:
            raise DeviceMix(f"{_name(func)} mixes tensors on devices {_names(devices)}")
        out = func(*args, **kwargs)
        if func in _FINITE and isinstance(out, torch.Tensor) and out.device.type == "meta" and \
                (func in (torch.isfinite, _T.isfinite) or getattr(first, "_finite_check", False)):
            out._finite_check = True  # what `bool()` of it will answer
        return out


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _name(func) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or str(func)


def _names(devices) -> str:
    return ", ".join(sorted(str(d) for d in devices))


def llama3_8b_config():
    """Llama-3-8B's shapes (Meta-Llama-3-8B-Instruct's config.json): 32 blocks, 4096 wide, MLP 14336."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                       rope_theta=500000.0, tie_word_embeddings=False)


def mistral_7b_config():
    """Mistral-7B-Instruct-v0.3's shapes: the same blocks as Llama-3-8B, another vocabulary."""
    from transformers import MistralConfig

    return MistralConfig(vocab_size=32768, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768,
                         rope_theta=1000000.0, sliding_window=None)


def meta_model(config):
    """A causal LM built from `config` on `meta`: shapes only, no weights, no memory."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    model.eval()
    model.requires_grad_(False)
    return model


def meta_factors(model, names) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """SVD factors of the right shapes on `meta` (U (out, r), s (r,), V (in, r)): no SVD is computed."""
    out = {}
    for name in names:
        o, i = model.get_submodule(name).weight.shape
        r = min(o, i)
        out[name] = (torch.empty(o, r, device="meta"), torch.empty(r, device="meta"), torch.empty(i, r, device="meta"))
    return out
