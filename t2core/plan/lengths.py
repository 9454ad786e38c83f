"""How long a task's prompts and answers are, in tokens, read from its data without a tokenizer.

Why from the data: a batch is padded to its longest row, so the memory of a stage follows the long
prompts of the slice it runs on (MBPP's prompts carry their tests, GSM8K's do not). Tokens are counted
as characters / `CHARS_PER_TOKEN` (English and code run 3.5-4.5 characters a token under the Llama-3,
Qwen2 and SmolLM2 tokenizers: the lower figure, so the plan errs high), plus the chat template's
system prompt and role markers. `bench/memory.py` checks the plan that results against measured peaks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

CHARS_PER_TOKEN = 3.5
TEMPLATE_TOKENS = 40  # a system prompt and the role markers (SmolLM2's and Qwen's templates add one)


@dataclass(frozen=True)
class SliceLengths:
    """Token lengths of one slice: its longest prompt, a long one of a random batch (95th percentile), and,
    for choice tasks, an item's candidates (their count and summed length, at the 95th percentile)."""

    items: int
    prompt_max: int
    prompt_p95: int
    candidates: int = 0
    candidate_tokens: int = 0
    reference_p95: int = 0  # a reference completion's tokens (what next-token prediction trains on)


def tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


def _p95(xs: list[int]) -> int:
    s = sorted(xs)
    return s[min(len(s) - 1, int(0.95 * len(s)))] if s else 0


@functools.lru_cache(maxsize=64)
def slice_lengths(task_name: str, split: str, limit: int | None, data_dir: str | None) -> SliceLengths:
    """The lengths of `task_name`'s `split` (its first `limit` items): read from the shipped data."""
    from t2core.paths import resolve_data_dir
    from t2core.tasks import get_task

    task = get_task(task_name)
    ds = task.load(split, resolve_data_dir(data_dir)).limit(limit)
    prompts = [TEMPLATE_TOKENS + sum(tokens(m["content"]) for m in task.messages(s)) for s in ds.samples]
    n_cands, cand_tokens = [0], [0]
    if task.output_type == "choice":
        cands = [task.candidates(s) for s in ds.samples]
        n_cands = [len(c) for c in cands]
        cand_tokens = [sum(tokens(c) for c in cs) for cs in cands]
    from t2core.errors import DataError

    refs = []
    for s in ds.samples:
        try:
            refs.append(tokens(task.reference_completion(s)))
        except (DataError, TypeError, NotImplementedError, ValueError, AttributeError):  # no reference solutions
            refs.append(0)
    return SliceLengths(len(ds.samples), max(prompts, default=0), _p95(prompts), max(n_cands), _p95(cand_tokens),
                        _p95(refs))
