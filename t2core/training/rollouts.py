"""Rollouts for the REINFORCE loop, one kind per task output type.

A rollout acts with the current policy on a batch of training prompts and returns what
Eq. 2 (paper §3.2) needs: which answers the task's checker accepts, the log-probability
of each answer under the differentiable policy, and the per-answer KL to the base model.

- `generate` (the paper): W' materialised, the sampler writes answers, then one
  differentiable forward scores the generated tokens: log π(ŷ|x) and the KL summed over the answer's
  tokens (`seq_reduction="sum"`, Eq. 1's log-probability of the sequence) or averaged per token.
- `choice` (t2core/training/choice.py): the answer is one of the task's candidates, drawn
  from the policy restricted to them.

Adding a kind is one function plus `register_rollout(output_type, fn)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import torch

from t2core.logprobs import (
    completion_logits,
    kl_per_token,
    masked_mean_per_seq,
    masked_sum_per_seq,
    pack,
    token_logprobs,
)
from t2core.models.registry import LoadedModel
from t2core.precision import autocast_for
from t2core.registry import Registry
from t2core.sampling.base import GenerationConfig, Sampler
from t2core.settings import step_seed
from t2core.tasks.base import Task
from t2core.training.config import RLConfig
from t2core.training.policies import PolicyAdapter
from t2core.training.recompute import recomputed


class Trainer(Protocol):
    """What a rollout reads from the REINFORCE trainer (`reinforce.ReinforceTrainer`), which sits
    above the rollouts: they see it through this view, never by importing it."""

    cfg: RLConfig
    loaded: LoadedModel
    task: Task
    gen: GenerationConfig  # how rollouts generate (temperature, new tokens, batch)
    sampler: Sampler
    adapter: PolicyAdapter  # the policy being trained


@dataclass
class Rollout:
    """What a rollout returns. `terms(idx)` computes, for the answers at batch positions `idx`,
    log π_W'(answer | prompt) (m,), differentiable w.r.t. the policy, and KL(π_W' ‖ π_W) per
    answer (m,) or None when kl_coef = 0; the trainer calls it per micro-batch and backpropagates
    each one before the next, so only one micro-batch's graph is alive at a time."""

    correct: list[bool]  # (B,) the task's checker on each answer
    terms: Callable[[list[int]], tuple[torch.Tensor, torch.Tensor | None]]
    tokens: int  # answer tokens in the batch


RolloutFn = Callable[[Trainer, list, int], Rollout]
_ROLLOUTS: Registry[RolloutFn] = Registry("rollout kind (task output_type)")


def register_rollout(output_type: str, fn: RolloutFn) -> None:
    _ROLLOUTS.register(output_type, fn)


def get_rollout(output_type: str) -> RolloutFn:
    return _ROLLOUTS.get(output_type)


def reduce_seq(x: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Per-token terms (B, k) of each answer as one number (B,): their sum or their mean over its tokens."""
    return masked_sum_per_seq(x, mask) if how == "sum" else masked_mean_per_seq(x, mask)


def answer_kl(logits: torch.Tensor, base_logits: torch.Tensor, direction: str) -> torch.Tensor:
    """Per-token KL (B, k) in `direction`: policy-ref KL(π_W' ‖ π_W) (Eq. 1) or ref-policy KL(π_W ‖ π_W')."""
    return kl_per_token(logits, base_logits) if direction == "policy-ref" else kl_per_token(base_logits, logits)


def generation_rollout(trainer: Trainer, batch: list, step: int) -> Rollout:
    """Sample answers (W' materialised or sent as vectors), then score their tokens with grad."""
    cfg, model, tok = trainer.cfg, trainer.loaded.model, trainer.loaded.tokenizer
    convs = [trainer.task.messages(s) for s in batch]
    gen = replace(trainer.gen, seed=step_seed(cfg.seed, step))
    if trainer.sampler.receives_svf:  # only z travels; the server builds W' itself
        comps = trainer.sampler.generate(convs, gen, svf=trainer.adapter.svf_weights())
    else:
        with trainer.adapter.rollout():
            comps = trainer.sampler.generate(convs, gen)
    correct = [sc.correct for sc in trainer.task.score_many(batch, [c.text for c in comps])]
    if any(c.prompt_ids is None or c.completion_ids is None for c in comps):
        raise TypeError(f"sampler {trainer.sampler.name!r} returned no token ids; RL needs a sampler that does.")
    dev = next(model.parameters()).device
    autocast = autocast_for(cfg.dtype, dev)

    def terms(idx: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        ids, attn, mask = pack([comps[i].prompt_ids for i in idx], [comps[i].completion_ids for i in idx],
                               tok.pad_token_id)
        ids, attn, mask = ids.to(dev), attn.to(dev), mask.to(dev)
        k = mask.shape[1]
        targets = ids[:, -k:]  # (m, k): completions end at the last column
        base_logits = None
        if cfg.kl_coef > 0:
            with torch.no_grad(), trainer.adapter.reference(), autocast:
                base_logits = completion_logits(model, ids, attn, k)
        with trainer.adapter.train_forward(), autocast, recomputed(model, cfg.grad_checkpointing):
            logits = completion_logits(model, ids, attn, k)
        logp = reduce_seq(token_logprobs(logits, targets), mask, cfg.seq_reduction)  # (m,)
        kl = (reduce_seq(answer_kl(logits, base_logits, cfg.kl_direction), mask, cfg.seq_reduction)
              if base_logits is not None else None)
        return logp, kl

    return Rollout(correct, terms, sum(len(c.completion_ids) for c in comps))


register_rollout("generate", generation_rollout)
