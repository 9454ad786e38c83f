"""Two-pass self-adaptation (paper §3.3), recorded: one task slice evaluated with a strategy (prompt,
cls-expert, few-shot). Pass 1 decides per question (or per task), pass 2 answers; recorded as an `eval`
run whose samples carry each decision and whose metrics carry both passes' wall times. A few-shot
strategy's search (t2ops/fewshot.py) is a prerequisite run of its own. `ask` answers one question the
same way, unrecorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from t2core import evaluate as core
from t2core.adapt import ExpertSet, StrategyInputs, strategy_class, strategy_names
from t2core.adapt.fewshot import FewShotConfig
from t2core.adapt.pass1 import check_prompt
from t2core.adapt.prompt import FORMULATIONS
from t2core.adapt.search import SearchResult
from t2core.adapt.twopass import applied, decision_variants, two_pass
from t2core.artifacts import ArtifactStore
from t2core.errors import ConfigError
from t2core.evaluate import EvalConfig
from t2core.experts import ExpertRef
from t2core.models.registry import LoadedModel
from t2core.sampling import check_sampler, make_sampler
from t2core.sampling.base import run_backend
from t2core.variants import VariantRef, describe_ref, resolve_variant
from t2ops.fewshot import OP as FEW_SHOT
from t2ops.fewshot import FewShotPlan, FewShotRequest
from t2ops.model import ModelIdent
from t2ops.operation import Hooks, OperationBase, Produced, Recorded, register_operation
from t2ops.records import EvalRecord, RunRow


@dataclass(frozen=True)
class AdaptRequest:
    eval: EvalConfig
    strategy: str  # prompt | cls-expert | few-shot
    experts: tuple[str, ...]  # one expert per category (prompt, cls-expert) or the mixture's ingredients
    formulation: str = "generate"  # pass 1 of prompt (and of cls-expert without cls_formulation): generate or choice
    cls_expert: str | None = None  # the classification expert z^c (cls-expert)
    few_shot: FewShotConfig | None = None  # the search (few-shot); its task is the evaluated task
    pass1_max_new_tokens: int = 32
    sampler: str = "hf"
    data_dir: str | None = None
    prompt: str = "t2"  # the prompt strategy's classification prompt: t2 or released (t2core/adapt/pass1.py)
    strip_format: bool = False  # the prompt strategy sees questions without the task's format instructions
    cls_formulation: str = ""  # cls-expert's pass 1: generate or choice ("": `formulation`)

    def __post_init__(self) -> None:
        check_sampler(self.sampler)
        needs = strategy_class(self.strategy).needs
        for name in ("formulation", "cls_formulation"):
            value = getattr(self, name)
            if value not in FORMULATIONS and not (name == "cls_formulation" and value == ""):
                raise ConfigError(f"{name} {value!r} must be one of {', '.join(FORMULATIONS)}.")
        check_prompt(self.prompt)
        if self.pass1_max_new_tokens < 1:
            raise ConfigError(f"pass1_max_new_tokens={self.pass1_max_new_tokens} must be >= 1.")
        if "cls-expert" in needs and not self.cls_expert:
            raise ConfigError(f"strategy {self.strategy} needs the classification expert (--cls-expert svf:<id>); "
                              "train it with `t2 train --task dispatch`.")
        if "search" in needs and (self.few_shot is None or self.few_shot.task != self.eval.task):
            raise ConfigError(f"strategy {self.strategy} needs a few-shot search on the evaluated task "
                              f"({self.eval.task}).")

    def inputs(self, **resolved) -> StrategyInputs:
        """What the strategy is named and built from: this request's pass-1 settings and `resolved`."""
        return StrategyInputs(formulation=self.formulation, max_new_tokens=self.pass1_max_new_tokens,
                              prompt=self.prompt, strip_format=self.strip_format,
                              cls_formulation=self.cls_formulation, **resolved)

    def search(self) -> FewShotRequest:
        assert self.few_shot is not None
        return FewShotRequest(self.few_shot, self.experts, self.sampler, self.data_dir)


@dataclass(frozen=True)
class AdaptPlan:
    run_id: str
    row: RunRow
    req: AdaptRequest
    ref: VariantRef  # the run-level record: strategy (with its settings) and the expert set
    core: core.EvalPlan
    experts: tuple[ExpertRef, ...]
    search: FewShotPlan | None = None  # the few-shot strategy's search: a run of its own, done first
    cls_ref: VariantRef | None = None
    outputs: tuple = ()


@dataclass(frozen=True)
class AdaptOutcome:
    run_id: str
    accuracy: float | None
    n: int
    reused: bool
    metrics: dict = field(default_factory=dict)
    result: core.EvalResult | None = None
    search: SearchResult | None = None


class AdaptOp(OperationBase):
    name = "adapt"

    def plan(self, req: AdaptRequest, ident: ModelIdent) -> AdaptPlan:
        """The run id from content: the strategy's settings, the experts (and z^c, or the search's id)."""
        weights_hash = ident.weights_hash
        experts = tuple(sorted((ExpertRef.resolve(e) for e in req.experts), key=lambda e: e.id))
        for e in experts:
            e.check_model(weights_hash)
        kind = strategy_class(req.strategy)
        sp = FEW_SHOT.plan(req.search(), ident) if "search" in kind.needs else None
        cls_ref = describe_ref(weights_hash, req.cls_expert) if "cls-expert" in kind.needs else None
        ExpertSet.of(kind, experts)  # what the strategy needs (one expert per category...): checked before anything runs
        spec = kind.spec_of(req.inputs(cls_name=cls_ref.name if cls_ref else "", search_id=sp.run_id if sp else ""))
        ref = VariantRef("svf", tuple(e.id for e in experts), dispatch=spec)
        p = core.plan_eval(weights_hash, req.eval, req.data_dir, ref.name, run_backend(req.sampler))
        task = p.task
        row = RunRow(run_id=p.run_id, kind="eval", model=ident.alias, weights_hash=weights_hash, task=task.name,
                     task_version=task.version, split=p.cfg.split,
                     config=core.eval_record_config(p.cfg, req.sampler, ref), data_files=p.dataset.files,
                     seed=p.cfg.generation.seed, variant=ref, strategy=req.strategy)
        return AdaptPlan(p.run_id, row, req, ref, p, experts, sp, cls_ref)

    def size(self, plan: AdaptPlan) -> int:
        return len(plan.core.dataset)

    def needs(self, plan: AdaptPlan) -> dict:
        return {"search": (FEW_SHOT, plan.search)} if plan.search else {}

    def done(self, plan: AdaptPlan, recorded: Recorded) -> AdaptOutcome:
        m = recorded.metrics
        return AdaptOutcome(plan.run_id, m.get("accuracy"), int(m.get("n", 0)), True, m)

    def run(self, plan: AdaptPlan, loaded: LoadedModel, deps: dict, hooks: Hooks) -> Produced[AdaptOutcome]:
        p, req = plan, plan.req
        found: SearchResult | None = deps.get("search")
        smp = make_sampler(req.sampler, loaded=loaded)
        gen = p.core.cfg.generation
        dtype = gen.dtype
        strategy = _strategy(req, p.cls_ref, loaded, found, gen.batch_size, dtype)
        if strategy.spec != p.ref.dispatch:  # the plan named the run after the strategy it builds here
            raise RuntimeError(f"strategy spec {strategy.spec!r} differs from the planned {p.ref.dispatch!r}")
        paths = {e.id: str(e.path) for e in (*p.experts, *((found.expert,) if found else ()))}
        variant_of = decision_variants(loaded, paths, dtype)  # each expert verified before the run starts
        expert_set = ExpertSet.of(strategy, p.experts)  # what the strategy declares it needs
        res = two_pass(loaded, p.core, p.ref, strategy, expert_set, variant_of, smp, hooks.progress)
        return Produced(AdaptOutcome(p.run_id, res.accuracy, len(res.samples), False, res.metrics, res, found),
                        (EvalRecord(res, p.core.dataset.n_total),))

    def footprint(self, req: AdaptRequest, ctx):
        """Pass 1 (a classification of every question; none for the search's mixture) and pass 2 (the
        evaluation with the chosen experts): the larger of the two (t2core/plan/)."""
        from t2core.plan.work import two_pass

        kind = strategy_class(req.strategy)
        pass1 = None if "search" in kind.needs else (
            (req.cls_formulation or req.formulation) if "cls-expert" in kind.needs else req.formulation)
        return two_pass(req.eval, ctx, pass1, req.pass1_max_new_tokens, remote=req.sampler != "hf")


OP = register_operation(AdaptOp())


def _strategy(req: AdaptRequest, cls_ref: VariantRef | None, loaded: LoadedModel, found: SearchResult | None,
              batch_size: int, dtype: str):
    """The request's strategy, built from what this run resolved for it (z^c applied, the search found)."""
    cls_variant = resolve_variant(loaded, cls_ref, dtype=dtype) if cls_ref is not None else None
    return strategy_class(req.strategy).build(req.inputs(
        batch_size=batch_size, dtype=dtype, cls_name=cls_ref.name if cls_ref else "", cls_variant=cls_variant,
        search_id=found.run_id if found else "", search_expert=found.expert.id if found else ""))


def stored_expert_for(weights_hash: str, task: str, targets: str = "mlp", store: ArtifactStore | None = None) -> str:
    """The one stored SVF expert this model trained by REINFORCE on `task` with `targets` (not a few-shot
    mixture, not an expert transferred from another model, not SVF-NTP); a clear error when there is
    none or several."""
    from t2core.experts import scan_experts, unreadable_note
    from t2core.svf import expert_origin, read_header

    stored, unreadable = scan_experts(store)
    hits = []
    for eid, f in stored:
        h = read_header(f)
        if (h.base_weights_hash == weights_hash and h.task == task and h.svf.get("targets", "mlp") == targets
                and expert_origin(h) == "svf-pg" and eid not in hits):  # one expert per content id: a store
            hits.append(eid)  # written before it kept one file per id may hold the same expert twice
    if len(hits) != 1:
        how = f"`t2 train --task {task}`" if task != "dispatch" else "`t2 train --task dispatch` (the cls-expert)"
        raise ConfigError(f"{len(hits)} stored experts for {task!r} on this model"
                          + (f" ({', '.join(hits)}); pass the one to use with --experts / --cls-expert."
                             if hits else f"{unreadable_note(unreadable)}; train it with {how}."))
    return hits[0]


def adapt_request(prof, strategy: str, task: str, limit: int | None = None, experts: str | None = None,
                  cls_expert: str | None = None, formulation: str | None = None, shots: int | None = None,
                  shot_split: str = "train", seed: int | None = None, sampler: str | None = None,
                  data_dir: str | None = None, weights_hash: str = "") -> AdaptRequest:
    """One AdaptRequest from a profile and what was given (`experts` comma-separated; by default the stored
    experts of the profile's training tasks and, for cls-expert, its classification expert). `t2 adapt`,
    `t2 ask` and `t2 api` build their requests here. `task` "" (one question, a chat): the evaluation
    settings of a one-item ARC-Challenge slice, which only lend their generation settings."""
    from t2core.profiles import EvalSlice

    needs = strategy_class(strategy).needs
    ev = prof.eval_config(EvalSlice(task, limit=limit), seed) if task else prof.eval_config(
        EvalSlice("arc_challenge_cloze", limit=1), seed)
    few = None
    if "search" in needs:
        given = {"split": shot_split, **({"shots": shots} if shots else {})}
        few = prof.few_shot_config(task, seed, **given)
    names = tuple(e.strip() for e in experts.split(",") if e.strip()) if experts else tuple(
        stored_expert_for(weights_hash, t, prof.targets) for t in prof.adapt.experts)
    cls = cls_expert or (stored_expert_for(weights_hash, "dispatch", prof.targets) if "cls-expert" in needs
                         else None)
    return AdaptRequest(ev, strategy, names, cls_expert=cls, few_shot=few, sampler=sampler or prof.sampler,
                        data_dir=data_dir, **prof.pass1_kwargs(formulation))


def check_ask_strategy(strategy: str) -> str:
    """One question needs a strategy that decides question by question (prompt, cls-expert)."""
    if not strategy_class(strategy).per_question:
        each = ", ".join(n for n in strategy_names() if strategy_class(n).per_question)
        raise ConfigError(f"{strategy} adaptation adapts to a task, not to one question; use --strategy {each} "
                          f"(or `t2 adapt --strategy {strategy} --task ...`).")
    return strategy


@dataclass(frozen=True)
class Answer:
    text: str
    category: str
    applied: str  # what pass 2 answered with (`Decision.applies`): base weights, one expert or a mixture
    pass1_seconds: float
    pass2_seconds: float


def ask(question: str, req: AdaptRequest, loaded: LoadedModel, max_new_tokens: int = 256) -> Answer:
    """Answer one question the two-pass way (a strategy that decides per question); nothing is recorded.
    The decision is applied as two-pass evaluation applies it (`twopass.applied`): base, one expert or a mixture."""
    import time
    from dataclasses import replace

    check_ask_strategy(req.strategy)
    kind = strategy_class(req.strategy)
    experts = tuple(ExpertRef.resolve(e) for e in req.experts)
    for e in experts:
        e.check_model(loaded.weights_hash)
    expert_set = ExpertSet.of(kind, experts)
    cls_ref = describe_ref(loaded.weights_hash, req.cls_expert) if "cls-expert" in kind.needs else None
    gen = replace(req.eval.generation, max_new_tokens=max_new_tokens)
    smp = make_sampler(req.sampler, loaded=loaded)
    strategy = _strategy(req, cls_ref, loaded, None, 1, gen.dtype)
    variant_of = decision_variants(loaded, {e.id: str(e.path) for e in experts}, gen.dtype)
    t0 = time.perf_counter()
    (decision,) = strategy.decide(smp, [question], expert_set)
    t1 = time.perf_counter()
    ctx, kw = applied(decision, variant_of).using(smp)
    with ctx:
        (out,) = smp.generate([[{"role": "user", "content": question}]], gen, **kw)
    t2 = time.perf_counter()
    return Answer(out.text, decision.category, decision.applies, t1 - t0, t2 - t1)
