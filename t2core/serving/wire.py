"""What crosses the pipe between a sampler and its server process: builtins and raw float32 bytes.

Both ends may run different Python environments (the vLLM server pins its own torch), so messages
are pickles of plain types only (dict, list, str, int, float, bytes); tensors travel as
little-endian float32 bytes with their shape. An expert is identified by `expert_id`, a hash of its
vectors and the base weights they belong to: the client computes it before sending, the server
recomputes it from the bytes it received and reports it back, so each side knows the other applies
exactly the expert it means (paper §3.1: z alone defines W' = U diag(s ⊙ z) Vᵀ).
"""

from __future__ import annotations

import torch

from t2core.hashing import sha256_bytes, tensors_hash

BASE = "base"  # the expert id of the unmodified base weights


def pack_tensor(t: torch.Tensor) -> dict:
    t = t.detach().to(torch.float32).contiguous().cpu()
    return {"shape": list(t.shape), "data": t.numpy().tobytes()}


def unpack_tensor(msg: dict) -> torch.Tensor:
    return torch.frombuffer(bytearray(msg["data"]), dtype=torch.float32).reshape(msg["shape"]).clone()


def expert_id(base_weights_hash: str, scale: dict[str, torch.Tensor]) -> str:
    """Content id of an expert as a server receives it: the base weights hash and its fp32 vectors."""
    vectors = tensors_hash({n: v.detach().to(torch.float32) for n, v in scale.items()})
    return sha256_bytes(f"svf-vectors|{base_weights_hash}|{vectors}".encode())[:32]
