"""A profile's miniature: the same stages, on the tiny random model and a few samples each (issue 23).

A profile sized for a GPU (`qwen`, `paper`) cannot run in the default test suite, but its shape can:
the same training tasks, baselines, evaluation and unseen slices, strategies, searches, ablation variants
and transfer, with every slice cut to `limit` samples and every training cut to a couple of steps (the
`tiny` profile's sizes). A test runs the miniature end to end and compares its stage names with the
profile's. The stage names do not depend on the sizes.

    register_profile(miniature(get_profile("qwen")))   # "qwen-miniature", for full_paper_flow in this process
"""

from __future__ import annotations

from dataclasses import replace

from t2core.profiles.settings import BaselineSlice, EvalSlice, Profile, TrainSlice

# the tiny profile's sizes (t2core/profiles/tiny.py)
_RL = {"steps": 2, "batch_size": 2, "train_limit": 8, "valid_limit": 3, "valid_every": 2, "max_new_tokens": 4,
       "temperature": 1.0, "micro_batch_size": None}
_NTP = {"steps": 2, "batch_size": 2, "train_limit": 8}
_CEM = {"population": 4, "generations": 2}
_SHOTS = 3


def _cut(sl: EvalSlice, limit: int) -> EvalSlice:
    return replace(sl, limit=min(sl.limit or limit, limit))


def _over(overrides: tuple[tuple[str, object], ...], small: dict[str, object]) -> tuple[tuple[str, object], ...]:
    """The slice's overrides with the small sizes in place of its own (its other settings kept)."""
    return tuple({**dict(overrides), **small}.items())


def miniature(prof: Profile, model: str = "tiny-random", dst: str = "tiny-random-twin", limit: int = 3) -> Profile:
    """`prof`'s stages on `model` at tiny sizes, fp32 and the hf sampler (CI has neither a GPU nor vLLM
    for a random model), named `<name>-miniature`."""
    cut = [(sl, _cut(sl, limit)) for sl in prof.evals]
    ad, tr, ab = prof.adapt, prof.transfer, prof.ablations
    baselines = tuple(BaselineSlice(b.task, b.method, _over(b.overrides, _RL if b.entry.objective == "pg" else _NTP))
                      for b in prof.baselines)
    adapt = replace(ad, pass1_max_new_tokens=min(ad.pass1_max_new_tokens, 32), unseen=tuple(_cut(sl, limit) for sl in ad.unseen), cls=_over(ad.cls, _RL),
                    cem=_over(ad.cem, _CEM), light_cem=_over(ad.light_cem, _CEM) if ad.light_cem else (),
                    shots=_SHOTS, light_shots=2 if ad.light_shots else None)
    transfer = replace(tr, dst=dst if tr.dst else None, evals=tuple(_cut(sl, limit) for sl in tr.evals),
                       unseen=tuple(_cut(sl, limit) for sl in tr.unseen))
    ablations = replace(ab, steps=min(ab.steps, 2), evals=tuple(_cut(sl, limit) for sl in ab.evals))
    return replace(prof, name=f"{prof.name}-miniature", model=model, dtype="float32", sampler="hf", batch_size=4,
                   max_new_tokens=8, evals=tuple(small for _, small in cut),
                   trains=tuple(TrainSlice(t.task, _over(t.overrides, _RL), t.kl_grid) for t in prof.trains),
                   baselines=baselines, adapt=adapt, transfer=transfer, ablations=ablations,
                   description=f"{prof.name}'s stages on {model}, {limit} samples per slice (tests)")
