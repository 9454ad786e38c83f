"""Token log-probabilities of completions and the KL to the base model.

Sequences are prompt + completion, right-padded; only completion tokens count.
Shapes: ids (B, T), mask (B, T) with 1 on completion tokens (the tokens being scored).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pack(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> tuple[torch.Tensor, ...]:
    """(input_ids (B,T), attention_mask (B,T), completion_mask (B,T)) right-padded."""
    seqs = [p + c for p, c in zip(prompts, completions, strict=True)]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    comp = torch.zeros((len(seqs), width), dtype=torch.float32)
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        attn[i, : len(p) + len(c)] = 1
        comp[i, len(p) : len(p) + len(c)] = 1.0
    return ids, attn, comp


def completion_logits(model: torch.nn.Module, ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
    """Logits predicting tokens 1..T-1 (B, T-1, V), computed in fp32."""
    out = model(input_ids=ids, attention_mask=attn, use_cache=False)
    return out.logits[:, :-1].float()


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log π(x_t | x_<t) for t = 1..T-1: (B, T-1)."""
    return torch.gather(F.log_softmax(logits, dim=-1), 2, ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def kl_per_token(logits: torch.Tensor, base_logits: torch.Tensor) -> torch.Tensor:
    """KL(π ‖ π_base) over the vocabulary at each position: (B, T-1)."""
    logp = F.log_softmax(logits, dim=-1)
    logq = F.log_softmax(base_logits, dim=-1)
    return (logp.exp() * (logp - logq)).sum(-1)


def masked_mean_per_seq(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the masked tokens of each sequence (B,); 0 for sequences with no tokens."""
    return (x * mask).sum(1) / mask.sum(1).clamp(min=1.0)
