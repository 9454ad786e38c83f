"""Token log-probabilities of completions and the KL to the base model.

Sequences are prompt + completion, *left*-padded so every completion ends at the last
column: the vocabulary projection (B x T x 49k for SmolLM2) is then computed only for the
last K+1 positions (`logits_to_keep`), K = the longest completion. Position ids come from
the attention mask, as in generation.
Shapes: ids (B, T), attn (B, T); targets/mask (B, K) cover the last K columns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pack(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> tuple[torch.Tensor, ...]:
    """(input_ids (B,T), attention_mask (B,T), completion_mask (B,K)) left-padded, K = max completion length."""
    seqs = [p + c for p, c in zip(prompts, completions, strict=True)]
    width = max(len(s) for s in seqs)
    k = max(1, max(len(c) for c in completions))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    comp = torch.zeros((len(seqs), k), dtype=torch.float32)
    for i, (s, c) in enumerate(zip(seqs, completions, strict=True)):
        ids[i, width - len(s) :] = torch.tensor(s)
        attn[i, width - len(s) :] = 1
        if c:
            comp[i, k - len(c) :] = 1.0
    return ids, attn, comp


def completion_logits(model: torch.nn.Module, ids: torch.Tensor, attn: torch.Tensor, k: int) -> torch.Tensor:
    """Logits predicting the last k tokens (B, k, V), in fp32."""
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False, logits_to_keep=k + 1)
    return out.logits[:, :-1].float()


#: Without autograd, `token_logprobs` normalises this many vocabulary rows at a time (x 49k for SmolLM2: ~25 MB
#: in fp32), so the log-softmax over the whole (B, k, V) block never exists next to the logits (issue 43).
LOGPROB_CHUNK_ROWS = 128


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log π(target_t | prefix): (B, k) from logits (B, k, V) and targets (B, k), in fp32.

    With autograd (training) the log-softmax of the whole block is kept for the backward anyway. Without it
    (evaluation, choice scoring), the rows are normalised `LOGPROB_CHUNK_ROWS` at a time and only the
    targets' entries kept: the same values (each row's log-softmax on its own), without a second (B, k, V)
    block beside the logits (for 16 ARC items' ~64 candidates of up to ~30 tokens, ~0.4 GB in fp32); fp32
    copies of bf16 logits are made chunk by chunk too."""
    if torch.is_grad_enabled() and logits.requires_grad:
        return torch.gather(F.log_softmax(logits.float(), dim=-1), 2, targets.unsqueeze(-1)).squeeze(-1)
    b, k, v = logits.shape
    flat, tflat = logits.reshape(b * k, v), targets.reshape(b * k, 1)
    out = torch.empty(b * k, dtype=torch.float32, device=logits.device)
    for lo in range(0, b * k, LOGPROB_CHUNK_ROWS):
        hi = lo + LOGPROB_CHUNK_ROWS
        out[lo:hi] = F.log_softmax(flat[lo:hi].float(), dim=-1).gather(1, tflat[lo:hi]).squeeze(1)
    return out.reshape(b, k)


def kl_per_token(logits: torch.Tensor, base_logits: torch.Tensor) -> torch.Tensor:
    """KL(π ‖ π_base) over the vocabulary at each position: (B, k)."""
    logp = F.log_softmax(logits, dim=-1)
    logq = F.log_softmax(base_logits, dim=-1)
    return (logp.exp() * (logp - logq)).sum(-1)


def masked_sum_per_seq(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over the masked tokens of each sequence (B,): e.g. log π(y|x) of a whole answer."""
    return (x * mask).sum(1)


def masked_mean_per_seq(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the masked tokens of each sequence (B,); 0 for sequences with no tokens."""
    return (x * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def sequence_logprobs(model: torch.nn.Module, prompts: list[list[int]], completions: list[list[int]],
                      pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ_t log π(c_t | prompt, c_<t) per sequence (N,), completion lengths (N,)).

    Differentiable when grad is enabled; the caller chooses autocast and batching.
    """
    ids, attn, mask = pack(prompts, completions, pad_id)
    dev = next(model.parameters()).device
    ids, attn, mask = ids.to(dev), attn.to(dev), mask.to(dev)
    k = mask.shape[1]
    logits = completion_logits(model, ids, attn, k)  # (N, k, V)
    return (token_logprobs(logits, ids[:, -k:]) * mask).sum(1), mask.sum(1)


def group_log_softmax(seq_logprobs: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """Normalise sequence log-probs within each group: log π(c_j | x) restricted to x's candidates.

    `seq_logprobs` (N,) holds the groups back to back, N = Σ sizes; returns one (k_i,) per group.
    """
    if sum(sizes) != seq_logprobs.shape[0] or min(sizes, default=1) < 1:
        raise ValueError(f"group sizes {sizes} do not partition {seq_logprobs.shape[0]} sequences.")
    return [torch.log_softmax(g, dim=0) for g in torch.split(seq_logprobs, sizes)]


def candidate_logprobs(model: torch.nn.Module, prompts: list[list[int]], candidates: list[list[list[int]]],
                       pad_id: int) -> list[torch.Tensor]:
    """log π(c_j | x_i) restricted to each item's candidates: one (k_i,) per item, fp32, on the model's device.

    `prompts[i]` is item i's prompt ids, `candidates[i]` its k_i candidate continuations; all
    pairs go through one forward (differentiable when grad is enabled).
    """
    p = [prompt for prompt, cands in zip(prompts, candidates, strict=True) for _ in cands]
    c = [cand for cands in candidates for cand in cands]
    seq, _ = sequence_logprobs(model, p, c, pad_id)  # (Σ k_i,)
    return group_log_softmax(seq.float(), [len(cands) for cands in candidates])


#: A batch's common prompt prefix is computed once when it is at least this long (shorter ones cost more
#: in bookkeeping than they save).
MIN_SHARED_PREFIX = 8


def common_prefix(prompts: list[list[int]]) -> int:
    """Tokens every prompt starts with, leaving each at least one of its own (its last token's logits
    predict the first candidate token)."""
    n = min(len(p) for p in prompts) - 1
    first = prompts[0]
    for i in range(max(n, 0)):
        t = first[i]
        if any(p[i] != t for p in prompts):
            return i
    return max(n, 0)


def candidate_logprobs_shared(model: torch.nn.Module, prompts: list[list[int]], candidates: list[list[list[int]]],
                              pad_id: int, prompt_ctx=None, cand_ctx=None) -> list[torch.Tensor]:
    """`candidate_logprobs`, each prompt computed once for all its candidates, and the batch's common
    prefix once for all its prompts.

    The common prefix (a system message, a chat template's header: ~150 of the dispatch prompt's ~190
    tokens) goes through one 1-row forward whose KV cache is repeated per prompt; the rest of each
    prompt (left-padded after the prefix: the mask has a hole, positions stay those of the unpadded
    prompt) continues from it and keeps the cache; its rows are repeated per candidate and the
    candidates (right-padded) continue from there. A prompt of P tokens, L of them shared, with k
    candidates of C tokens costs (P - L) + k·C token-forwards (plus L once) instead of k·(P + C).
    Differentiable when grad is enabled (REINFORCE on choice tasks: the gradient flows through the
    caches). `prompt_ctx()` / `cand_ctx()` wrap the prompt and candidate forwards (per-row experts need
    one weight row per prompt, then one per candidate); with them the prefix is not shared (the rows'
    weights differ). Shapes: prefix (1, L), prompt ids (B, T), candidate ids (N, K), N = Σ k_i.
    """
    import contextlib

    # An item's candidates often share their first tokens ("Category: \\boxed{" of the four dispatch answers):
    # that part has the same log-prob for every candidate and cancels in the normalisation below, so it
    # joins the prompt and only the tails are scored.
    prompts, candidates = _fold_common_candidate_starts(prompts, candidates)
    dev = next(model.parameters()).device
    b = len(prompts)
    shared = common_prefix(prompts) if b > 1 and prompt_ctx is None and cand_ctx is None else 0
    shared = shared if shared >= MIN_SHARED_PREFIX else 0
    cache = None
    if shared:
        pre = torch.tensor([prompts[0][:shared]], dtype=torch.long, device=dev)  # (1, L)
        out0 = model(input_ids=pre, use_cache=True, logits_to_keep=1)
        cache = _cache_of(out0)
        del out0  # the cache alone is kept (freed with it below)
        cache.batch_repeat_interleave(b)
    rest = [p[shared:] for p in prompts]
    width = max(len(p) for p in rest)
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    attn = torch.zeros((b, shared + width), dtype=torch.long)
    attn[:, :shared] = 1
    for i, p in enumerate(rest):
        ids[i, width - len(p):] = torch.tensor(p)
        attn[i, shared + width - len(p):] = 1
    ids, attn = ids.to(dev), attn.to(dev)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)[:, shared:]  # (B, T): positions of the unpadded prompts
    kw = {_cache_kwarg(model): cache} if cache is not None else {}
    with (prompt_ctx or contextlib.nullcontext)():
        out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True, logits_to_keep=1, **kw)
    first = F.log_softmax(out.logits[:, -1].float(), dim=-1)  # (B, V): predicts each candidate's first token
    sizes = [len(c) for c in candidates]
    # (N,); the output size given: no device -> host sync to learn it
    rep = torch.repeat_interleave(torch.arange(b, device=dev), torch.tensor(sizes, device=dev),
                                  output_size=sum(sizes))
    flat = [c for cs in candidates for c in cs]
    k = max(len(c) for c in flat)
    cids = torch.full((len(flat), k), pad_id, dtype=torch.long)
    cmask = torch.zeros((len(flat), k), dtype=torch.float32)
    for j, c in enumerate(flat):
        cids[j, :len(c)] = torch.tensor(c)
        cmask[j, :len(c)] = 1.0
    cids, cmask = cids.to(dev), cmask.to(dev)
    lp = first[rep].gather(1, cids[:, :1]) * cmask[:, :1]  # (N, 1)
    if k > 1:
        cache = _cache_of(out)
        cache.batch_select_indices(rep)  # one row of the prompt's cache per candidate
        plen = attn.sum(1)[rep]  # (N,) real prompt tokens: the first candidate token's position
        amask = torch.cat([attn[rep], cmask[:, :-1].long()], dim=1)  # (N, L + T + K - 1)
        cpos = plen[:, None] + torch.arange(k - 1, device=dev)[None, :]
        with (cand_ctx or contextlib.nullcontext)():
            out2 = model(input_ids=cids[:, :-1], attention_mask=amask, position_ids=cpos, use_cache=True,
                         **{_cache_kwarg(model): cache})
        logits2 = out2.logits
        del out2, out, cache, kw  # the caches (a row per candidate) go before the log-probs are taken
        more = token_logprobs(logits2, cids[:, 1:]) * cmask[:, 1:]  # (N, K - 1); no fp32 copy of the whole block
        del logits2
        lp = torch.cat([lp, more], dim=1)
    return group_log_softmax(lp.sum(1), sizes)


def _fold_common_candidate_starts(prompts: list[list[int]], candidates: list[list[list[int]]]
                                  ) -> tuple[list[list[int]], list[list[list[int]]]]:
    """Each item's tokens common to all its candidates (leaving each at least one) moved onto its prompt."""
    new_p, new_c = [], []
    for p, cs in zip(prompts, candidates, strict=True):
        n = common_prefix(cs) if len(cs) > 1 else 0
        new_p.append(p + cs[0][:n] if n else p)
        new_c.append([c[n:] for c in cs] if n else cs)
    return new_p, new_c


def _cache_of(out):
    return out.cache if getattr(out, "cache", None) is not None else out.past_key_values


def _cache_kwarg(model: torch.nn.Module) -> str:
    """`cache` (transformers >= 5.2x) or `past_key_values` (older): the name the model's forward takes."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
