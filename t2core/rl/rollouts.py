"""Rollouts for the REINFORCE loop, one kind per task output type.

A rollout acts with the current policy on a batch of training prompts and returns what
Eq. 2 (paper §3.2) needs: which answers the task's checker accepts, the log-probability
of each answer under the differentiable policy, and the per-answer KL to the base model.

- `generate` (the paper): W' materialised, the sampler writes answers, then one
  differentiable forward scores the generated tokens (log-prob averaged per token).
- `choice` (t2core/rl/choice.py): the answer is one of the task's candidates, drawn
  from the policy restricted to them.

Adding a kind is one function plus `register_rollout(output_type, fn)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from t2core.logprobs import completion_logits, kl_per_token, masked_mean_per_seq, pack, token_logprobs
from t2core.registry import Registry

if TYPE_CHECKING:
    from t2core.rl.reinforce import ReinforceTrainer


@dataclass
class Rollout:
    correct: list[bool]  # (B,) the task's checker on each answer
    logp: torch.Tensor  # (B,) log π_W'(answer | prompt), differentiable w.r.t. the policy
    kl: torch.Tensor | None  # (B,) KL(π_W' ‖ π_W) per answer, or None when kl_coef = 0
    tokens: int  # answer tokens in the batch


RolloutFn = Callable[["ReinforceTrainer", list, int], Rollout]
_ROLLOUTS: Registry[RolloutFn] = Registry("rollout kind (task output_type)")


def register_rollout(output_type: str, fn: RolloutFn) -> None:
    _ROLLOUTS.register(output_type, fn)


def get_rollout(output_type: str) -> RolloutFn:
    return _ROLLOUTS.get(output_type)


def autocast_for(dtype: str, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")


def generation_rollout(trainer: ReinforceTrainer, batch: list, step: int) -> Rollout:
    """Sample answers (W' materialised or sent as vectors), then score their tokens with grad."""
    cfg, model, tok = trainer.cfg, trainer.loaded.model, trainer.loaded.tokenizer
    convs = [trainer.task.messages(s) for s in batch]
    gen = replace(trainer.gen, seed=cfg.seed * 100_003 + step)
    if trainer.sampler.receives_svf:  # only z travels; the server builds W' itself
        comps = trainer.sampler.generate(convs, gen, svf=trainer.adapter.svf_weights())
    else:
        with trainer.adapter.rollout():
            comps = trainer.sampler.generate(convs, gen)
    correct = [trainer.task.score(s, c.text).correct for s, c in zip(batch, comps, strict=True)]
    if any(c.prompt_ids is None or c.completion_ids is None for c in comps):
        raise TypeError(f"sampler {trainer.sampler.name!r} returned no token ids; RL needs a sampler that does.")
    ids, attn, mask = pack([c.prompt_ids for c in comps], [c.completion_ids for c in comps], tok.pad_token_id)
    dev = next(model.parameters()).device
    ids, attn, mask = ids.to(dev), attn.to(dev), mask.to(dev)
    k = mask.shape[1]
    targets = ids[:, -k:]  # (B, k): completions end at the last column
    autocast = autocast_for(cfg.dtype, dev)
    base_logits = None
    if cfg.kl_coef > 0:
        with torch.no_grad(), trainer.adapter.reference(), autocast:
            base_logits = completion_logits(model, ids, attn, k)
    with trainer.adapter.train_forward(), autocast:
        logits = completion_logits(model, ids, attn, k)
    logp = masked_mean_per_seq(token_logprobs(logits, targets), mask)  # (B,)
    kl = masked_mean_per_seq(kl_per_token(logits, base_logits), mask) if base_logits is not None else None
    return Rollout(correct, logp, kl, int(mask.sum()))


register_rollout("generate", generation_rollout)
