"""Two-pass inference (paper §3.3, Figure 1): pass 1 decides z' per question, pass 2 answers with it.

Pass 1 runs the strategy on the questions as the strategy asks for them (`Strategy.questions`: the task's
user turn, or for the prompt strategy with `strip_format` the question without the task's format instructions). Pass 2 groups
the questions by the expert (or mixture) they were given and answers each group in full batches with that
expert materialised (W' = U diag(s ⊙ z') Vᵀ, one swap per group). The previous issue's benchmark
(`bench/bank.py`, batch of 32 mixing 3 experts) put the factored per-row batch at 0.85× a batch
with one materialised expert and per-batch grouping at 0.76-0.80×; grouping the *whole slice* by
expert instead runs every group at that one-expert ceiling, losing only the last partial batch of
each group (≤ K−1 extra batches) and K weight swaps (milliseconds). It also works with every
sampler, including those that receive experts as vectors (`receives_svf`).

Per sample the result records the decision (category → expert) and per pass the wall time
(`pass1_seconds`, `pass2_seconds`: paper Table 3).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from t2core.adapt.dispatch import Decision, ExpertSet, Strategy
from t2core.errors import ConfigError
from t2core.evaluate import EvalPlan, EvalResult, eval_record_config, sample_rows
from t2core.evaluate import answer as answer_with
from t2core.models.registry import LoadedModel
from t2core.sampling.base import Sampler
from t2core.variants import BASE, Variant, VariantRef, resolve_variant

#: The variant of a decision's experts and mixing weights, resolved against the loaded model
#: (verified, lazily applied): one expert (no weights) or the mixture Σ_k α_k z_k.
VariantOf = Callable[[tuple[str, ...], tuple[float, ...]], Variant]


def decision_variants(loaded: LoadedModel, paths: dict[str, str], dtype: str) -> VariantOf:
    """A `VariantOf` over the experts at `paths` (id -> file), each resolved once per distinct decision:
    one expert, or a mixture of them. Every expert is verified here, before pass 1 runs; a decision naming
    an expert that was not given is one error line."""
    variants: dict = {}

    def variant_of(ids: tuple[str, ...], alphas: tuple[float, ...]) -> Variant:
        missing = [i for i in ids if i not in paths]
        if missing:
            raise ConfigError(f"a decision names {', '.join(missing)}, which is not among the experts given "
                              f"({', '.join(sorted(paths)) or 'none'}).")
        if (ids, alphas) not in variants:
            variants[ids, alphas] = resolve_variant(loaded, VariantRef("svf", ids, alphas,
                                                                       paths=tuple(paths[i] for i in ids)), dtype=dtype)
        return variants[ids, alphas]

    for i in sorted(paths):
        variant_of((i,), ())
    return variant_of


def applied(decision: Decision, variant_of: VariantOf) -> Variant:
    """The weights pass 2 answers `decision` with, whole (paper §3.3): the base weights, one expert, or the
    mixture z' = Σ_k α_k z_k. Two-pass evaluation and `ask` both apply decisions through it."""
    return BASE if not decision.expert_ids else variant_of(decision.expert_ids, decision.alphas)


def answer(task, samples: list, sampler: Sampler, gen, variant: Variant, progress=None) -> list:
    """Pass 2 for one group: the task's prompts answered with `variant` applied (`evaluate.answer`)."""
    ctx, kw = variant.using(sampler)
    with ctx:
        return answer_with(task, samples, sampler, gen, progress, **kw)


def question_of(task, sample) -> str:
    """The question as the task puts it to the model (its user turn): what pass 1 classifies by default."""
    return task.messages(sample)[-1]["content"]


def two_pass(loaded: LoadedModel, planned: EvalPlan, ref: VariantRef, strategy: Strategy, experts: ExpertSet,
             variant_of: VariantOf, sampler: Sampler, progress: Callable[[int], None] | None = None) -> EvalResult:
    """Evaluate `planned`'s slice the two-pass way; `ref` is the run-level record (experts, strategy)."""
    task, ds, run_id, cfg = planned
    gen = cfg.generation
    t0 = time.perf_counter()
    decisions = strategy.decide(sampler, strategy.questions(task, ds.samples), experts)
    pass1 = time.perf_counter() - t0
    groups: dict[tuple[tuple[str, ...], tuple[float, ...]], list[int]] = {}
    for i, d in enumerate(decisions):  # a decision is applied whole: its experts with their weights
        groups.setdefault((d.expert_ids, d.alphas), []).append(i)
    completions: list = [None] * len(ds.samples)
    t1 = time.perf_counter()
    for _, idx in sorted(groups.items()):
        variant = applied(decisions[idx[0]], variant_of)
        outs = answer(task, [ds.samples[i] for i in idx], sampler, gen, variant, progress)
        for i, o in zip(idx, outs, strict=True):
            completions[i] = o
    pass2 = time.perf_counter() - t1
    rows = sample_rows(task, ds.samples, completions, decisions, cfg.scoring)
    return EvalResult(run_id=run_id, kind="eval", ref=ref, model=loaded.alias, weights_hash=loaded.weights_hash,
                      task=cfg.task, task_version=task.version, split=cfg.split,
                      config=eval_record_config(cfg, sampler.name, ref), data_files=ds.files, samples=rows,
                      seconds=pass1 + pass2, seed=gen.seed, strategy=strategy.name,
                      extra_metrics={"pass1_seconds": pass1, "pass2_seconds": pass2,
                                     "pass1_fraction": pass1 / (pass1 + pass2) if pass1 + pass2 else 0.0})

