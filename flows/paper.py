"""The stages of the paper's flows, as one body each: what runs on what, in an order that a local run
follows one by one and a Dask run submits at once where stages do not depend on each other.

Each body takes a `Stages` (flows/stages.py) and the flow's model identity, submits stages, asks for an
outcome only where a later stage needs it (an expert's id, the classification expert, the searches'
experts), and returns the stages in submission order. Every setting comes from the profile, resolved
once into each operation's typed request (t2core/profiles/). A submission that needs another stage's outcome
sits in `S.guard(label)`, so that a part of the flow (`t2 run --stages`) leaves it out when that stage was
skipped.
"""

from __future__ import annotations

from typing import Any

from catalog.experts import source_experts
from flows.stages import Stage, Stages
from t2core.adapt import strategy_class
from t2core.errors import ConfigError
from t2core.faults import fault_injection_point
from t2core.methods import sampler_for
from t2core.profiles import Profile
from t2core.tasks import get_task
from t2ops import adaptation, baseline, evaluation, fewshot, pick, svd, training, transfer
from t2ops.model import ModelIdent

Produced = list[tuple[str, str, Stage]]  # (task, product, the stage that trains it): what Table 1 evaluates


def expert_id(S: Stages, stage: Stage) -> str:
    out = S.outcome(stage)
    return getattr(out, "expert_id", None) or out.picked


def full_paper(S: Stages, prof: Profile, ident: ModelIdent, seed: int, data_dir: str | None, logger) -> None:
    """SVD -> experts and baselines -> base and Table 1 evaluations -> adaptation, ablations, transfer."""
    with S.guard("svd"):
        S.outcome(S.submit("svd", svd.OP, ident, svd.SvdRequest(prof.targets)))
    produced: Produced = [(task, "svf", stage) for task, stage in expert_stages(S, prof, ident, seed, data_dir)]
    for bl in prof.baselines:
        if bl.entry.objective == "pg":  # LoRA-PG: the same REINFORCE loop as the SVF expert, on LoRA
            req = training.TrainRequest(prof.rl_config(bl.task, seed, **bl.kwargs(), method=bl.entry.selector),
                                        sampler_for(bl.method, prof.sampler), data_dir)
            stage = S.submit(f"baseline:{bl.method}:{bl.task}", training.OP, ident, req)
        else:
            stage = S.submit(f"baseline:{bl.method}:{bl.task}", baseline.OP, ident,
                             baseline.BaselineRequest(prof.ntp_config(bl, seed), data_dir))
        produced.append((bl.task, bl.method, stage))
    slices = {sl.task: sl for sl in prof.evals}
    evals = [(sl, None, "base") for sl in prof.evals]
    evals += [(slices[t], stage, product) for t, product, stage in produced if t in slices]
    for sl, trained, product in evals:
        label = f"eval:{sl.task}" + ("" if product == "base" else f":{product}")
        with S.guard(label):
            expert = expert_id(S, trained) if trained else None
            req = evaluation.EvalRequest(prof.eval_config(sl, seed), expert, sampler_for(product, prof.sampler),
                                         data_dir)
            S.submit(label, evaluation.OP, ident, req)
            if S.executes and not S.concurrent:
                fault_injection_point("eval")  # resume tests: a kill -9 between two recorded evaluations
    if prof.adapt.unseen:
        adaptation_stages(S, prof, ident, produced, seed, data_dir, logger)
    if prof.ablations.in_full_paper and prof.ablations.variants:  # Table 4
        ablation_stages(S, prof, ident, seed, data_dir)
    if prof.transfer.dst:  # cross-model transfer (paper §4.4), onto the profile's destination model
        with S.guard(f"transfer:{prof.transfer.dst}"):
            sources = {t: expert_id(S, stage) for t, product, stage in produced if product == "svf"}
            transfer_stages(S, prof, S.model(prof.transfer.dst, seed, prof.resolved_factor_dtype()), sources, seed, data_dir,
                            logger)


def expert_stages(S: Stages, prof: Profile, ident: ModelIdent, seed: int, data_dir: str | None
                  ) -> list[tuple[str, Stage]]:
    """One SVF expert per training task of the profile (paper §4.1), by REINFORCE: (task, its stage). The
    full-paper flow and the experts-api flow submit the same requests, so either reads back the other's."""
    out = []
    for tr in prof.trains:
        req = training.TrainRequest(prof.rl_config(tr.task, seed), prof.sampler, data_dir,
                                    kl_grid=prof.kl_grid(tr.task))
        out.append((tr.task, S.submit(f"train:{tr.task}", training.OP, ident, req)))
    return out


def dispatch_stage(S: Stages, prof: Profile, ident: ModelIdent, seed: int, data_dir: str | None) -> Stage:
    """The classification expert z^c (paper §3.3, the cls-expert strategy's pass 1), trained on the dispatch task."""
    return S.submit("train:dispatch", training.OP, ident,
                    training.TrainRequest(prof.cls_config(seed), prof.sampler, data_dir))


def adaptation_stages(S: Stages, prof: Profile, ident: ModelIdent, produced: Produced, seed: int,
                      data_dir: str | None, logger) -> None:
    """Table 2's runs: dispatcher training, CEM per unseen task, base / LoRAs / the LoRA picked on the shots,
    and each strategy of the profile's `adapt.strategies` (the paper's three by default); Table 10's light
    search (fewer shots) and its evaluation where the profile asks for one. What a strategy needs
    (`Strategy.needs`: z^c, a search) is what the flow makes for it; no strategy is named here."""
    kinds = {name: strategy_class(name) for name in prof.adapt.strategies}
    wants_cls = any("cls-expert" in k.needs for k in kinds.values())
    wants_search = any("search" in k.needs for k in kinds.values())
    cls_stage = dispatch_stage(S, prof, ident, seed, data_dir) if wants_cls else None
    by_task = {t: stage for t, product, stage in produced if product == "svf"}  # Profile checks they are trained

    def experts() -> tuple[str, ...]:  # asked for where needed: a part of the flow may have skipped them
        return tuple(expert_id(S, by_task[t]) for t in prof.adapt.experts)

    done = {(sl.task, sl.split, sl.limit) for sl in prof.evals}
    loras = [(t, product, stage) for t, product, stage in produced if product != "svf"]
    for sl in prof.adapt.unseen:
        ev = prof.eval_config(sl, seed)
        plain = [] if (sl.task, sl.split, sl.limit) in done else [(None, "base")]
        cat = get_task(sl.task).category  # "category": only the LoRA of the training task of the same category
        mine = [(stage, m) for t, m, stage in loras if prof.adapt.loras == "all" or get_task(t).category == cat]
        for trained, product in plain + mine:  # base, and the LoRAs (Table 2's LoRA rows)
            with S.guard(f"eval:{sl.task}:{product}"):
                expert = expert_id(S, trained) if trained else None
                S.submit(f"eval:{sl.task}:{product}", evaluation.OP, ident,
                         evaluation.EvalRequest(ev, expert, sampler_for(product, prof.sampler), data_dir))
        task = get_task(sl.task)
        searches: list[tuple[Any, str]] = []  # (few-shot config, label suffix): the full search and the light one
        if wants_search and prof.adapt.searches(sl.task):  # shots never come from test
            split = "train" if "train" in task.splits else "valid"
            few = prof.few_shot_config(sl.task, seed, split=split)
            with S.guard(f"few-shot:{sl.task}"):
                S.submit(f"few-shot:{sl.task}", fewshot.OP, ident,
                         fewshot.FewShotRequest(few, experts(), prof.sampler, data_dir))
            searches.append((few, ""))
            if prof.adapt.light_shots:  # Table 10: the same search on fewer prompts (and generations)
                light = prof.light_few_shot_config(sl.task, seed, split=split)
                with S.guard(f"few-shot-light:{sl.task}"):
                    S.submit(f"few-shot-light:{sl.task}", fewshot.OP, ident,
                             fewshot.FewShotRequest(light, experts(), prof.sampler, data_dir))
                searches.append((light, "-light"))
            if loras:  # Table 2's LoRA chosen without test data: the best on the same shots
                with S.guard(f"lora-pick:{sl.task}"):
                    chosen = S.submit(f"lora-pick:{sl.task}", pick.OP, ident,
                                      pick.PickRequest(few, tuple(expert_id(S, st) for _, _, st in loras), data_dir))
                    picked = S.outcome(chosen).picked
                    if picked not in {expert_id(S, st) for st, _ in mine}:
                        product = picked.partition(":")[0]
                        S.submit(f"eval:{sl.task}:{product}:picked", evaluation.OP, ident,
                                 evaluation.EvalRequest(ev, picked, sampler_for(product, prof.sampler), data_dir))
        elif wants_search:
            logger.info("few-shot %s: not searched (no train or valid split: shots never come from test; or "
                        "left out by the profile's adapt.few_shot_tasks)", sl.task)
        runs: list[tuple[str, Any, str]] = []  # (strategy, its search's config or None, stage label)
        for name, kind in kinds.items():
            runs += [(name, few, name + suffix) for few, suffix in searches] if "search" in kind.needs else \
                [(name, None, name)]
        for strategy, few, label in runs:
            with S.guard(f"adapt:{label}:{sl.task}"):
                cls = expert_id(S, cls_stage) if "cls-expert" in kinds[strategy].needs else None
                req = adaptation.AdaptRequest(ev, strategy, experts(), cls_expert=cls, few_shot=few,
                                              sampler=prof.sampler, data_dir=data_dir, **prof.pass1_kwargs())
                S.submit(f"adapt:{label}:{sl.task}", adaptation.OP, ident, req)


def ablation_stages(S: Stages, prof: Profile, ident: ModelIdent, seed: int, data_dir: str | None) -> None:
    """Table 4's runs: each variant trained (or reused), then it and base on every ablation slice."""
    ab = prof.ablations
    for targets in dict.fromkeys(v.targets for v in ab.variants if v.entry.product == "svf"):
        with S.guard(f"svd:{targets}"):
            S.outcome(S.submit(f"svd:{targets}", svd.OP, ident, svd.SvdRequest(targets)))
    products: list[tuple[str, str, Stage]] = []  # (label, product, the stage that trains it)
    for v in ab.variants:
        cfg = prof.ablation_config(v, seed)
        if v.entry.objective == "pg":
            stage = S.submit(f"ablation:{v.label}", training.OP, ident,
                             training.TrainRequest(cfg, sampler_for(v.entry.product, prof.sampler), data_dir))
        else:
            stage = S.submit(f"ablation:{v.label}", baseline.OP, ident, baseline.BaselineRequest(cfg, data_dir))
        products.append((v.label, v.entry.product, stage))
    for sl in ab.evals:
        ev = prof.eval_config(sl, seed)
        S.submit(f"eval:{sl.task}", evaluation.OP, ident, evaluation.EvalRequest(ev, None, prof.sampler, data_dir))
        for label, product, stage in products:
            with S.guard(f"eval:{sl.task}:{label}"):
                S.submit(f"eval:{sl.task}:{label}", evaluation.OP, ident,
                         evaluation.EvalRequest(ev, expert_id(S, stage), sampler_for(product, prof.sampler), data_dir))


def transfer_stages(S: Stages, prof: Profile, dst_ident: ModelIdent, sources: dict[str, str], seed: int,
                    data_dir: str | None, logger) -> None:
    """Tables 5 and 9: each source expert moved to the destination with each control, the destination's
    base on the slices, each transferred expert on its own task (Table 9) and on the unseen tasks of its
    category (Table 5), and few-shot over the transferred and the destination's own experts (cross-model)."""
    tr, dst = prof.transfer, dst_ident.alias
    with S.guard(f"svd:{dst}"):
        S.outcome(S.submit(f"svd:{dst}", svd.OP, dst_ident, svd.SvdRequest(prof.targets)))
    moved: list[tuple[str, str, str]] = []  # (task, control, destination expert)
    for task in tr.experts or tuple(sources):
        for control in tr.controls:
            with S.guard(f"transfer:{task}:{control}"):
                stage = S.submit(f"transfer:{task}:{control}", transfer.OP, dst_ident,
                                 transfer.TransferRequest(sources[task], control, tr.seed))
                moved.append((task, control, expert_id(S, stage)))
    _say_equal_controls(moved, logger)
    for sl, unseen in [(sl, False) for sl in tr.evals] + [(sl, True) for sl in tr.unseen]:
        ev = prof.eval_config(sl, seed)
        S.submit(f"eval:{dst}:{sl.task}", evaluation.OP, dst_ident,
                 evaluation.EvalRequest(ev, None, prof.sampler, data_dir))
        for task, control, eid in moved:  # Table 9: on its own task; Table 5: on unseen tasks of its category
            if (get_task(task).category == get_task(sl.task).category) if unseen else task == sl.task:
                S.submit(f"eval:{dst}:{sl.task}:{task}:{control}", evaluation.OP, dst_ident,
                         evaluation.EvalRequest(ev, eid, prof.sampler, data_dir))
    if tr.few_shot:
        try:  # the destination's own experts, where it has them (the paper: Mistral's and Llama's)
            own = tuple(source_experts(S.cat, dst_ident.alias, prof.adapt.experts or None, prof.targets))
        except ConfigError:
            own = ()
        experts = tuple(dict.fromkeys([eid for _, control, eid in moved if control == "ordered"] + list(own)))
        if len(moved) < len(tr.experts or tuple(sources)) * len(tr.controls):  # a part of the flow skipped some
            S.blocked += [(f"few-shot:{dst}:{sl.task}", "transfer:*") for sl in tr.unseen
                          if S.selected(f"few-shot:{dst}:{sl.task}")]
            return
        for sl in tr.unseen:
            task = get_task(sl.task)
            if not experts or not any(s in task.splits for s in ("train", "valid")):
                continue  # shots never come from test
            few = prof.few_shot_config(sl.task, seed, split="train" if "train" in task.splits else "valid")
            S.submit(f"few-shot:{dst}:{sl.task}", fewshot.OP, dst_ident,
                     fewshot.FewShotRequest(few, experts, prof.sampler, data_dir))
            S.submit(f"adapt:{dst}:few-shot:{sl.task}", adaptation.OP, dst_ident,
                     adaptation.AdaptRequest(prof.eval_config(sl, seed), "few-shot", experts, few_shot=few,
                                             sampler=prof.sampler, data_dir=data_dir, **prof.pass1_kwargs()))
    logger.info("transfer to %s: %d experts moved (%d distinct)", dst, len(moved), len({e for *_, e in moved}))


def _say_equal_controls(moved: list[tuple[str, str, str]], logger) -> None:
    """A control whose expert is another's (a source expert at z = 1 everywhere stays z = 1 when shuffled or
    resampled) has the same evaluation as it: said, so a table row that repeats another is not a surprise."""
    first: dict[str, tuple[str, str]] = {}
    for task, control, eid in moved:
        if eid in first:
            t0, c0 = first[eid]
            logger.info("transfer:%s:%s is the same expert as transfer:%s:%s (%s): its evaluations are that one's",
                        task, control, t0, c0, eid)
        else:
            first[eid] = (task, control)
