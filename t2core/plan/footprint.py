"""The memory a stage needs at its peak, part by part, from the model's shapes and the stage's settings.

Why a model and not a measurement: `t2 plan` must say before anything starts whether the `paper` profile
fits one 80 GB GPU, on a machine that has neither the GPU nor the weights. Each function below counts the
bytes of one part of a stage's peak; the operations (t2ops) add up the parts their stage holds at once.
The counts follow what PyTorch keeps alive, and `bench/memory.py` checks them against measured peaks
(docs/performance.md gives the ratios):

- weights: every parameter in its storage dtype (t2 loads them in float32);
- SVD factors: U (out, r), s (r,), V (in, r) of every targeted matrix (paper §3.1), resident once per load;
- activations kept for the gradient of z: per token and layer, the norms' inputs and outputs (float32, the
  residual stream's dtype), the q/k/v projections and their rotated copies, the attention output and the
  MLP's four intermediates (in the compute dtype); SDPA keeps no attention weights;
- logits of the scored tokens: the head's output, its float32 copy and the log-softmax kept for the
  backward (and, with a KL penalty, the reference model's two more);
- W' of every targeted matrix, built once per forward and kept for the backward (materialised mode);
- generation: the KV cache of the batch at its full length (K in float32 under autocast), and one layer's transient activations of the
  prefill;
- a runtime floor (the interpreter, torch, transformers, the flow engine) and the allocator's slack.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from t2core.plan.shape import DTYPE_BYTES, ModelShape

GB = 1e9
#: the flow's process with torch, transformers, prefect and duckdb imported, a tokenizer and the data: a
#: stage that computes nothing (an evaluation copied from the base run's) peaked at 1.65 GB in the smol
#: `make run`, 0.98 GB of it the weights and factors (bench/memory.py); a CUDA context adds ~0.5 GB of device memory
RUNTIME_HOST = int(0.7 * GB)
CUDA_CONTEXT = int(0.5 * GB)
#: the allocator's slack on top of the live tensors at a peak (fragmentation, caching allocators), as a
#: fraction of the stage's transient bytes (calibrated by bench/memory.py on the smol profile)
SLACK = 0.10


@dataclass(frozen=True)
class Footprint:
    """A stage's peak, by part (bytes), plus what it writes to disk and the work it does (FLOPs)."""

    parts: tuple[tuple[str, int], ...]
    disk: int = 0
    flops: float = 0.0
    decode_steps: int = 0  # forward steps of one token per row (each reads every weight: memory-bound on a GPU)
    host: int = 0  # bytes held on the host beside a GPU run's device parts (originals set aside by a swap)

    @property
    def total(self) -> int:
        return sum(b for _, b in self.parts)

    def plus(self, other: Footprint) -> Footprint:
        """Both at once (their parts side by side)."""
        return Footprint(self.parts + other.parts, self.disk + other.disk, self.flops + other.flops,
                         self.decode_steps + other.decode_steps, self.host + other.host)


def compute_bytes(dtype: str) -> int:
    """Bytes per element of activations: bf16 under autocast, else float32."""
    return DTYPE_BYTES[dtype]


def weights(shape: ModelShape, dtype: str = "float32") -> int:
    return shape.n_params * DTYPE_BYTES[dtype]


def factors(shape: ModelShape, spec: str, dtype: str = "float32") -> int:
    """U, V in their storage dtype and s in float32, for every matrix `spec` targets."""
    b = DTYPE_BYTES[dtype]
    return sum((o + i) * min(o, i) * b + min(o, i) * 4 for o, i in shape.matrices(spec))


def svd_workspace(shape: ModelShape, spec: str) -> int:
    """One matrix decomposed at a time, in float32: its copy, U and Vᵀ, and LAPACK's work (~one more copy)."""
    return max(4 * (2 * o * i + (o + i) * min(o, i)) for o, i in shape.matrices(spec))


def act_per_token(shape: ModelShape, dtype: str) -> int:
    """Bytes kept for the backward per token, over all layers."""
    b = compute_bytes(dtype)
    qd, kvd = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    # SDPA keeps no attention weights, padding mask or not (its fused CPU and CUDA kernels keep the output
    # and a log-sum-exp): measured on SmolLM2, 8 x 360 tokens, the count below is within 5% (bench/memory.py)
    per_layer = 16 * shape.hidden + b * (3 * qd + 3 * kvd + 4 * shape.intermediate)
    return shape.layers * per_layer


def grad_activations(shape: ModelShape, sequences: int, length: int, dtype: str, checkpointing: bool = False) -> int:
    """Kept for the backward; with gradient checkpointing only each layer's input is kept (the residual
    stream, float32) and one layer's activations are recomputed at a time during the backward."""
    tokens = sequences * length
    if checkpointing:  # each layer's input, and the layer being recomputed: its activations, their gradients and
        # its backward's buffers, ~3 layers' worth (measured on SmolLM2 by bench/memory_probes.py)
        return tokens * (shape.layers * shape.hidden * 4 + 3 * act_per_token(shape, dtype) // shape.layers)
    return tokens * act_per_token(shape, dtype)


def logits(shape: ModelShape, scored_tokens: int, dtype: str, kl: bool = False, grad: bool = True) -> int:
    """The head's output of the scored tokens (its float32 copy under bf16), its log-softmax (kept for the
    backward) and, when the backward starts, the gradients of both (float32); a KL penalty adds the
    reference's logits and log-softmax and the KL's elementwise terms."""
    head = 4 if compute_bytes(dtype) == 4 else compute_bytes(dtype) + 4  # .float() of fp32 logits is no copy
    per = shape.vocab * (head + 4 + (8 if grad else 0)) + (shape.vocab * 4 * 4 if kl else 0)
    return scored_tokens * per


def materialised_copies(shape: ModelShape, spec: str, dtype: str) -> int:
    """W' = U diag(s⊙z) Vᵀ of every targeted matrix (and U scaled), built in one forward and kept for its
    backward (SVFLinear's materialise mode)."""
    b = compute_bytes(dtype)
    return sum((o * i + o * min(o, i)) * b for o, i in shape.matrices(spec))


def swapped_weights(shape: ModelShape, spec: str, gpu: bool = False) -> Footprint:
    """W' written into the model for generation (`materialised`): on a GPU W' is written in place and the
    originals wait on the host (one matrix's W' on the device at a time); on the host W' is written in place
    too and each original read back from the model's file after (one matrix's W' and one read buffer at a
    time), except for a model without a weight file, whose originals are set aside: the targeted matrices
    then exist twice while an expert is applied."""
    every = sum(o * i * 4 for o, i in shape.matrices(spec))
    one = max(o * i * 4 for o, i in shape.matrices(spec))
    if gpu:
        return Footprint((("W' (one matrix at a time)", one),), host=every)
    if shape.weight_file:
        return Footprint((("W' and a read buffer (one matrix at a time)", 2 * one),))
    return Footprint((("W' (swapped in)", every),))


def kv_cache(shape: ModelShape, sequences: int, length: int, dtype: str) -> int:
    """K and V of every layer. Under bf16 autocast V is the projection's bf16 but K is float32: the rotary
    embedding's cos and sin come in the residual stream's dtype (float32: t2 keeps the weights in float32)
    and the rotation promotes the keys to it (transformers' Llama, Qwen2, Mistral; tests/test_plan.py)."""
    return shape.layers * shape.kv_heads * shape.head_dim * sequences * length * (4 + compute_bytes(dtype))


def prefill_transient(shape: ModelShape, sequences: int, length: int, dtype: str) -> int:
    """One layer's largest intermediates in a forward without a graph (MLP, attention weights), plus the
    last position's logits: what a prefill holds beside the cache."""
    b = compute_bytes(dtype)
    mlp = 3 * shape.intermediate * b * sequences * length
    return mlp + sequences * shape.vocab * 4 * 2


def forward_flops(shape: ModelShape, tokens: int, length: int = 0) -> float:
    """2·N per token for the matrices, plus attention's 4·layers·d_attn·length per token."""
    return 2.0 * shape.n_params * tokens + 4.0 * shape.layers * shape.heads * shape.head_dim * length * tokens


def generation(shape: ModelShape, sequences: int, prompt: int, new: int, dtype: str) -> Footprint:
    """Sampling `new` tokens after `prompt` for `sequences` rows at once (the hf sampler, KV cache)."""
    length = prompt + new
    parts = (("kv cache", kv_cache(shape, sequences, length, dtype)),
             ("activations", prefill_transient(shape, sequences, prompt, dtype)))
    return Footprint(parts, flops=forward_flops(shape, sequences * length, length), decode_steps=new)


def factored_per_token(shape: ModelShape, spec: str, dtype: str) -> int:
    """SVFLinear's factored mode keeps, per token and targeted matrix, Vᵀx and its scaled copy (r each)."""
    return 2 * compute_bytes(dtype) * shape.ranks(spec)


def grad_forward(shape: ModelShape, sequences: int, length: int, scored: int, dtype: str, spec: str | None,
                 kl: bool = False, checkpointing: bool = False, mode: str = "factored") -> Footprint:
    """One differentiable forward (and its backward) of `sequences` rows of `length` tokens, `scored` of
    them per row scored; `spec`: the SVF targets the forward goes through (None: no SVF wrapper), in
    SVFLinear's `mode` (factored: r-wide intermediates per token; materialise: W' built and kept)."""
    parts = [("activations", grad_activations(shape, sequences, length, dtype, checkpointing)),
             ("logits", logits(shape, sequences * scored, dtype, kl))]
    if spec and mode == "materialise":
        copies = materialised_copies(shape, spec, dtype)  # checkpointed: rebuilt layer by layer in the backward
        parts.append(("W' (materialised)", copies // shape.layers if checkpointing else copies))
    elif spec:
        per = factored_per_token(shape, spec, dtype)
        parts.append(("SVF intermediates (factored)",
                      sequences * length * (per // shape.layers if checkpointing else per)))
    tokens = sequences * length
    flops = (4 if checkpointing else 3) * forward_flops(shape, tokens, length)  # + a recomputed forward
    flops += forward_flops(shape, tokens, length) if kl else 0
    return Footprint(tuple(parts), flops=flops)


def with_slack(f: Footprint) -> Footprint:
    """`f` plus the allocator's slack on its transient parts."""
    return replace(f, parts=f.parts + (("allocator slack", int(SLACK * f.total)),))
