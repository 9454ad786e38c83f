"""Rollouts for choice tasks (output_type "choice", e.g. `arc_easy_cloze`).

The policy is the model restricted to the item's candidates (paper Eq. 2 with the
action space cut down to the options):

    π_W'(c_j | x) = exp(ℓ_j) / Σ_i exp(ℓ_i),   ℓ_j = Σ_t log π_W'(c_j,t | x, c_j,<t)

One differentiable forward over all (prompt, candidate) pairs gives every ℓ_j; the
answer is drawn from π_W' at the configured temperature (0: the most likely candidate,
like greedy decoding), so the rollout and the gradient come from the same forward: no
generation, no second pass. The KL penalty is KL(π_W' ‖ π_W) over the candidates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from t2core.logprobs import group_log_softmax, sequence_logprobs
from t2core.rl.rollouts import Rollout, autocast_for, register_rollout
from t2core.sampling.base import pick_candidate
from t2core.sampling.hf import render_prompt

if TYPE_CHECKING:
    from t2core.rl.reinforce import ReinforceTrainer


def choice_rollout(trainer: ReinforceTrainer, batch: list, step: int) -> Rollout:
    cfg, model, tok, task = trainer.cfg, trainer.loaded.model, trainer.loaded.tokenizer, trainer.task
    prompts, cands = [], []
    for s in batch:
        p = tok(render_prompt(tok, task.messages(s)), add_special_tokens=False)["input_ids"]
        cs = [tok(c, add_special_tokens=False)["input_ids"] for c in task.candidates(s)]
        prompts += [p] * len(cs)
        cands.append(cs)
    flat = [c for cs in cands for c in cs]
    sizes = [len(cs) for cs in cands]
    autocast = autocast_for(cfg.dtype, next(model.parameters()).device)
    with trainer.adapter.train_forward(), autocast:
        seq, lens = sequence_logprobs(model, prompts, flat, tok.pad_token_id)  # (Σ k_i,)
    logps = group_log_softmax(seq.float(), sizes)  # B x (k_i,)
    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + step)
    picks = [pick_candidate(lp.detach(), cfg.temperature, gen) for lp in logps]
    correct = [task.score(s, task.candidates(s)[j]).correct for s, j in zip(batch, picks, strict=True)]
    kl = None
    if cfg.kl_coef > 0:
        with torch.no_grad(), trainer.adapter.reference(), autocast:
            base_seq, _ = sequence_logprobs(model, prompts, flat, tok.pad_token_id)
        base = group_log_softmax(base_seq.float(), sizes)
        kl = torch.stack([(lp.exp() * (lp - b)).sum() for lp, b in zip(logps, base, strict=True)])  # (B,)
    logp = torch.stack([lp[j] for lp, j in zip(logps, picks, strict=True)])  # (B,)
    offsets = torch.tensor([0, *sizes]).cumsum(0)[:-1].tolist()
    tokens = int(sum(lens[o + j] for o, j in zip(offsets, picks, strict=True)))
    return Rollout(correct, logp, kl, tokens)


register_rollout("choice", choice_rollout)
