"""Gradient checkpointing of the decoder layers for the differentiable forwards of training (issue 35).

Why: at paper scale the activations one micro-batch keeps for its backward are the largest part of a
REINFORCE step (Llama-3-8B: ~6.8 MB per token in bf16, so 8 answers of ~800 tokens hold ~43 GB). With
checkpointing each layer keeps only its input and recomputes its activations in the backward, one layer
at a time, for one more forward's compute. The gradient is the same up to rounding (a test checks it), so
the setting is not part of any run id, like `micro_batch_size`.

It uses transformers' own mechanism (`activation_checkpointing_enable`, non-reentrant, so frozen weights and
an input without grad still give z its gradient), switched on only inside the block, and marks only the
decoder layers as training (the condition transformers checks): dropout anywhere stays as the model has it.
The choice rollouts keep a KV cache across their forwards, which checkpointing turns off, so they do not
use it (t2core/training/choice.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def recomputed(model: torch.nn.Module, on: bool) -> Iterator[None]:
    """Within the block (when `on`), the model's decoder layers recompute their activations in the backward."""
    if not on:
        yield
        return
    from transformers.modeling_layers import GradientCheckpointingLayer

    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    if not layers or not getattr(model, "supports_gradient_checkpointing", False):
        raise TypeError(f"{type(model).__name__} has no decoder layers transformers can checkpoint; set "
                        "grad_checkpointing=False for it.")
    was = [m.training for m in layers]
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x; the old name warns
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    for m in layers:
        m.training = True  # the flag alone: no submodule switches to training behaviour
    try:
        yield
    finally:
        for m, t in zip(layers, was, strict=True):
            m.training = t
        (getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable)()
