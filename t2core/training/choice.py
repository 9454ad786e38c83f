"""Rollouts for choice tasks (output_type "choice", e.g. `arc_easy_cloze`).

The policy is the model restricted to the item's candidates (paper Eq. 2 with the
action space cut down to the options):

    π_W'(c_j | x) = exp(ℓ_j) / Σ_i exp(ℓ_i),   ℓ_j = Σ_t log π_W'(c_j,t | x, c_j,<t)

One differentiable pass over all (prompt, candidate) pairs gives every ℓ_j (the batch's common
prefix and each prompt computed once, its candidates continuing from the KV cache:
`candidate_logprobs_shared`, ~3x fewer token-forwards on ARC cloze than scoring each pair whole); the
answer is drawn from π_W' at the configured temperature (0: the most likely candidate,
like greedy decoding), so the rollout and the gradient come from the same forward: no
generation, no second pass (with `micro_batch_size`, the draw comes from one forward
without a graph and each micro-batch is recomputed with one: ~1.3x the time, a fraction of
the memory). The KL penalty is taken over the candidates, KL(π_W' ‖ π_W) (Eq. 1) or KL(π_W ‖ π_W') (the
released code's direction) as `kl_direction` says; `seq_reduction` does not apply (ℓ_j is a sum already).
"""

from __future__ import annotations

import contextlib

import torch

from t2core.logprobs import candidate_logprobs_shared
from t2core.sampling.base import pick_candidate
from t2core.sampling.hf import encode_choices
from t2core.settings import step_seed
from t2core.training.rollouts import Rollout, Trainer, autocast_for, register_rollout


def choice_rollout(trainer: Trainer, batch: list, step: int) -> Rollout:
    cfg, model, tok, task = trainer.cfg, trainer.loaded.model, trainer.loaded.tokenizer, trainer.task
    texts = [task.candidates(s) for s in batch]
    prompts, cands = encode_choices(tok, [task.messages(s) for s in batch], texts)  # the sampler's encoding
    autocast = autocast_for(cfg.dtype, next(model.parameters()).device)

    def restricted(idx: list[int]) -> list[torch.Tensor]:
        """log π(c_j | x_i) over each item's candidates, for the items at `idx`: len(idx) x (k_i,)."""
        # the batch's common prefix and each prompt computed once for all its candidates (differentiable)
        return candidate_logprobs_shared(model, [prompts[i] for i in idx], [cands[i] for i in idx], tok.pad_token_id)

    everything = list(range(len(batch)))
    mb = cfg.micro_batch_size or len(batch)
    whole = mb >= len(batch)
    # One forward gives the draw and, when the whole batch is one micro-batch, the gradient too;
    # otherwise the draw comes from forwards without a graph (micro-batch by micro-batch, so the
    # memory bound holds) and each micro-batch is redone with one in `terms`.
    with trainer.adapter.train_forward(), autocast, contextlib.nullcontext() if whole else torch.no_grad():
        first = [lp for lo in range(0, len(batch), mb) for lp in restricted(everything[lo : lo + mb])]
    gen = torch.Generator().manual_seed(step_seed(cfg.seed, step))
    picks = [pick_candidate(lp.detach(), cfg.temperature, gen) for lp in first]
    correct = [task.score(s, t[j]).correct for s, t, j in zip(batch, texts, picks, strict=True)]

    def terms(idx: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if whole and idx == everything:
            logps = first
        else:
            with trainer.adapter.train_forward(), autocast:
                logps = restricted(idx)
        kl = None
        if cfg.kl_coef > 0:
            with torch.no_grad(), trainer.adapter.reference(), autocast:
                base = restricted(idx)
            pairs = zip(logps, base, strict=True)
            if cfg.kl_direction == "policy-ref":
                kl = torch.stack([(lp.exp() * (lp - b)).sum() for lp, b in pairs])  # (m,)
            else:
                kl = torch.stack([(b.exp() * (b - lp)).sum() for lp, b in pairs])
        return torch.stack([lp[picks[i]] for lp, i in zip(logps, idx, strict=True)]), kl

    tokens = sum(len(cands[i][j]) for i, j in enumerate(picks))
    return Rollout(correct, terms, tokens)


register_rollout("choice", choice_rollout)
