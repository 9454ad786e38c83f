"""Prefect flows: `svd`, `train-expert`, `full-paper`, `transfer` and `ablations`.

`full-paper` chains: load model -> SVD (cached artifact) -> train one SVF expert per
training task (paper §4.1) -> train the profile's PEFT baselines (LoRA-NTP, LoRA-PG, ...)
-> base-model evaluation of every benchmark slice -> each expert and baseline on its own
task's test slice (Table 1) -> self-adaptation (paper §3.3, Table 2): the classification expert,
a few-shot CEM search per unseen task, base and every LoRA on the unseen slices, and the two-pass
evaluations with each strategy (prompt, cls-expert, few-shot), and the LoRA chosen on the few-shot
prompts; where the profile asks, the ablations (Table 4, the `ablations` flow's stages); for profiles
that name a destination model, cross-model transfer (paper §4.4, the `transfer` flow's stages). Each task is cached by
content, so rerunning after a crash redoes only what is missing. Every setting comes from
the profile, resolved once into the operation's typed request (t2core/profiles/).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from prefect import flow, get_run_logger

from catalog import Catalog
from catalog.experts import source_experts
from flows.steps import (
    adapt_step,
    baseline_step,
    eval_step,
    few_shot_step,
    load_model_step,
    pick_step,
    svd_step,
    train_step,
    transfer_step,
)
from t2core.errors import ConfigError
from t2core.experts import ExpertRef
from t2core.faults import fault_injection_point
from t2core.methods import sampler_for
from t2core.paths import resolve_data_dir
from t2core.profiles import Profile, get_profile
from t2core.tasks import get_task
from t2ops.adaptation import AdaptRequest
from t2ops.baseline import BaselineRequest
from t2ops.evaluation import EvalRequest
from t2ops.fewshot import FewShotRequest
from t2ops.pick import PickRequest
from t2ops.svd import SvdRequest
from t2ops.training import TrainRequest
from t2ops.transfer import TransferRequest


def _data_dir(data_dir: str | None) -> str | None:
    d = resolve_data_dir(data_dir)
    return str(d) if d else None


@flow(name="svd", log_prints=True)
def svd_flow(model: str = "smollm2-135m", targets: str = "mlp", seed: int = 0) -> dict[str, Any]:
    ident = load_model_step(model, seed)
    return svd_step(ident, SvdRequest(targets))


def _profile(name: str, sampler: str | None) -> Profile:
    """The profile a flow runs, with the sampler it was asked for (checked when the profile is rebuilt)."""
    prof = get_profile(name)
    return prof if sampler is None else dataclasses.replace(prof, sampler=sampler)


@flow(name="train-expert", log_prints=True)
def train_expert_flow(task: str = "arc_easy", profile: str = "smol", data_dir: str | None = None,
                      seed: int | None = None, sampler: str | None = None) -> dict[str, Any]:
    """Train one SVF expert with the profile's settings for `task`."""
    prof = _profile(profile, sampler)
    req = TrainRequest(prof.rl_config(task, seed), prof.sampler, _data_dir(data_dir))
    get_task(task).preflight()  # e.g. no code sandbox: fail now, not after the SVD
    ident = load_model_step(prof.model, prof.seed_or_default(seed))
    svd_step(ident, SvdRequest(prof.targets))
    return train_step(ident, req)


@flow(name="full-paper", log_prints=True)
def full_paper_flow(profile: str = "smol", data_dir: str | None = None, seed: int | None = None,
                    sampler: str | None = None) -> dict[str, Any]:
    """The whole paper pipeline for one profile: SVD, experts, baselines, evaluations, adaptation, and the
    ablations and transfer where the profile asks for them. `sampler` overrides the profile's."""
    prof = _profile(profile, sampler)
    seed = prof.seed_or_default(seed)
    for name in dict.fromkeys([sl.task for sl in prof.evals] + [t.task for t in prof.trains + prof.baselines]):
        get_task(name).preflight()  # e.g. no code sandbox: fail in seconds, not after an hour of training
    logger = get_run_logger()
    data_dir = _data_dir(data_dir)
    ident = load_model_step(prof.model, seed)
    steps: list[dict[str, Any]] = []
    svd_state, secs = _timed(svd_step, ident, SvdRequest(prof.targets))
    steps.append({"step": "svd", "state": svd_state.name, "seconds": secs, **svd_state.result()})
    produced: list[tuple[str, str, str]] = []  # (task, method, expert id): what Table 1 evaluates
    for tr in prof.trains:
        state, secs = _timed(train_step, ident, TrainRequest(prof.rl_config(tr.task, seed), prof.sampler, data_dir))
        out = state.result()
        produced.append((tr.task, "svf", out["expert_id"]))
        steps.append({"step": f"train:{tr.task}", "state": state.name, "seconds": secs, "run_id": out["expert_id"],
                      "accuracy": out["metrics"].get("best_valid"), "reused": out["reused"]})
        logger.info("expert %s: validation %.3f (base %.3f)", out["expert_id"], out["metrics"].get("best_valid", 0),
                    out["metrics"].get("base_valid", 0))
    for bl in prof.baselines:
        if bl.entry.objective == "pg":  # LoRA-PG: the same REINFORCE loop as the SVF expert, on LoRA
            req = TrainRequest(prof.rl_config(bl.task, seed, **bl.kwargs(), method=bl.entry.selector),
                               sampler_for(bl.method, prof.sampler), data_dir)
            state, secs = _timed(train_step, ident, req)
        else:
            state, secs = _timed(baseline_step, ident, BaselineRequest(prof.ntp_config(bl, seed), data_dir))
        out = state.result()
        produced.append((bl.task, bl.method, out["expert_id"]))
        steps.append({"step": f"baseline:{bl.method}:{bl.task}", "state": state.name, "seconds": secs,
                      "run_id": out["expert_id"],
                      "reused": out["reused"]})
    slices = {sl.task: sl for sl in prof.evals}
    evals = [(sl, None, "base") for sl in prof.evals]
    evals += [(slices[t], eid, method) for t, method, eid in produced if t in slices]
    for sl, expert, method in evals:
        req = EvalRequest(prof.eval_config(sl, seed), expert, sampler_for(method, prof.sampler), data_dir)
        state, secs = _timed(eval_step, ident, req)
        out = state.result()
        name = f"eval:{sl.task}" + ("" if method == "base" else f":{method}")
        steps.append({"step": name, "state": state.name, "seconds": secs, **out})
        logger.info("%s/%s: accuracy %.3f (%s)", name, sl.split, out.get("accuracy") or 0.0, state.name)
        fault_injection_point("eval")
    if prof.adapt.unseen:
        steps += _adaptation_stages(prof, ident, produced, seed, data_dir, logger)
    if prof.ablations.in_full_paper and prof.ablations.variants:  # Table 4
        steps += _ablation_stages(prof, ident, seed, data_dir)
    if prof.transfer.dst:  # cross-model transfer (paper §4.4), onto the profile's destination model
        sources = {t: eid for t, method, eid in produced if method == "svf"}
        steps += _transfer_stages(prof, prof.transfer.dst, sources, seed, data_dir, logger)
    return {"profile": profile, "model": prof.model, "weights_hash": ident.weights_hash, "steps": steps}


@flow(name="transfer", log_prints=True)
def transfer_flow(profile: str = "smol", dst: str | None = None, data_dir: str | None = None,
                  seed: int | None = None, sampler: str | None = None) -> dict[str, Any]:
    """Move the profile model's experts (from the catalog: run full-paper first) to `dst` (default: the
    profile's transfer.dst) and evaluate them there with the controls (Tables 5 and 9)."""
    prof = _profile(profile, sampler)
    dst = dst or prof.transfer.dst
    if not dst:
        raise ConfigError(f"profile {profile} names no transfer destination; pass one (`t2 run transfer --profile "
                          f"{profile} --dst qwen2.5-coder-0.5b`).")
    tasks = prof.transfer.experts or tuple(tr.task for tr in prof.trains)
    ids = source_experts(Catalog(), prof.model, tasks, prof.targets)
    sources = {ExpertRef.resolve(e).header.task: e for e in ids}
    steps = _transfer_stages(prof, dst, sources, prof.seed_or_default(seed), _data_dir(data_dir), get_run_logger())
    return {"profile": profile, "model": prof.model, "dst": dst, "steps": steps}


def _transfer_stages(prof, dst: str, sources: dict[str, str], seed: int, data_dir: str | None,
                     logger) -> list[dict[str, Any]]:
    """Tables 5 and 9: each source expert moved to `dst` with each control, the destination's base on the
    slices, each transferred expert on its own task (Table 9) and on the unseen tasks of its category
    (Table 5), and few-shot over the transferred and the destination's own experts (cross-model)."""
    tr = prof.transfer
    dst_ident = load_model_step(dst, seed)
    steps: list[dict[str, Any]] = [_stage(f"svd:{dst}", svd_step, dst_ident, SvdRequest(prof.targets))]
    moved: list[tuple[str, str, str]] = []  # (task, control, destination expert)
    for task in tr.experts or tuple(sources):
        for control in tr.controls:
            steps.append(_stage(f"transfer:{task}:{control}", transfer_step, dst_ident,
                                TransferRequest(sources[task], control, tr.seed)))
            moved.append((task, control, steps[-1]["expert_id"]))
    for sl, unseen in [(sl, False) for sl in tr.evals] + [(sl, True) for sl in tr.unseen]:
        ev = prof.eval_config(sl, seed)
        steps.append(_stage(f"eval:{dst}:{sl.task}", eval_step, dst_ident, EvalRequest(ev, None, prof.sampler, data_dir)))
        for task, control, eid in moved:  # Table 9: on its own task; Table 5: on unseen tasks of its category
            if (get_task(task).category == get_task(sl.task).category) if unseen else task == sl.task:
                steps.append(_stage(f"eval:{dst}:{sl.task}:{task}:{control}", eval_step, dst_ident,
                                    EvalRequest(ev, eid, prof.sampler, data_dir)))
    if tr.few_shot:
        try:  # the destination's own experts, where it has them (the paper: Mistral's and Llama's)
            own = tuple(source_experts(Catalog(), dst_ident.alias, prof.adapt.experts or None, prof.targets))
        except ConfigError:
            own = ()
        experts = tuple(dict.fromkeys([eid for _, control, eid in moved if control == "ordered"] + list(own)))
        for sl in tr.unseen:
            task = get_task(sl.task)
            if not experts or not any(s in task.splits for s in ("train", "valid")):
                continue  # shots never come from test
            few = prof.few_shot_config(sl.task, seed, split="train" if "train" in task.splits else "valid")
            steps.append(_stage(f"few-shot:{dst}:{sl.task}", few_shot_step, dst_ident,
                                FewShotRequest(few, experts, prof.sampler, data_dir)))
            steps.append(_stage(f"adapt:{dst}:few-shot:{sl.task}", adapt_step, dst_ident,
                                AdaptRequest(prof.eval_config(sl, seed), "few-shot", experts, prof.adapt.formulation,
                                             None, few, sampler=prof.sampler, data_dir=data_dir)))
    logger.info("transfer to %s: %d experts moved, %d stages", dst, len(moved), len(steps))
    return steps


def _adaptation_stages(prof, ident, produced: list[tuple[str, str, str]], seed: int, data_dir: str | None,
                       logger) -> list[dict[str, Any]]:
    """Table 2's runs: dispatcher training, CEM per unseen task, base / LoRAs / the LoRA picked on the shots,
    and the three strategies; Table 10's light search (fewer shots) and its evaluation where the profile
    asks for one."""
    steps: list[dict[str, Any]] = []
    by_task = {t: eid for t, method, eid in produced if method == "svf"}  # Profile checks they are trained
    experts = tuple(by_task[t] for t in prof.adapt.experts)
    state, secs = _timed(train_step, ident, TrainRequest(prof.cls_config(seed), prof.sampler, data_dir))
    cls = state.result()
    steps.append({"step": "train:dispatch", "state": state.name, "seconds": secs, "run_id": cls["expert_id"],
                  "reused": cls["reused"]})
    done = {(sl.task, sl.split, sl.limit) for sl in prof.evals}
    loras = [(t, method, eid) for t, method, eid in produced if method != "svf"]
    for sl in prof.adapt.unseen:
        ev = prof.eval_config(sl, seed)
        plain = [] if (sl.task, sl.split, sl.limit) in done else [(None, "base")]
        cat = get_task(sl.task).category  # "category": only the LoRA of the training task of the same category
        mine = [(eid, m) for t, m, eid in loras if prof.adapt.loras == "all" or get_task(t).category == cat]
        for expert, method in plain + mine:  # base, and the LoRAs (Table 2's LoRA rows)
            steps.append(_stage(f"eval:{sl.task}:{method}", eval_step, ident,
                                EvalRequest(ev, expert, sampler_for(method, prof.sampler), data_dir)))
        strategies = [("prompt", None, "prompt"), ("cls-expert", None, "cls-expert")]
        task = get_task(sl.task)
        if prof.adapt.searches(sl.task):  # shots never come from test
            split = "train" if "train" in task.splits else "valid"
            few = prof.few_shot_config(sl.task, seed, split=split)
            steps.append(_stage(f"few-shot:{sl.task}", few_shot_step, ident,
                                FewShotRequest(few, experts, prof.sampler, data_dir)))
            strategies.append(("few-shot", few, "few-shot"))
            if prof.adapt.light_shots:  # Table 10: the same search on fewer prompts
                light = prof.few_shot_config(sl.task, seed, split=split, shots=prof.adapt.light_shots)
                steps.append(_stage(f"few-shot-light:{sl.task}", few_shot_step, ident,
                                    FewShotRequest(light, experts, prof.sampler, data_dir)))
                strategies.append(("few-shot", light, "few-shot-light"))
            if loras:  # Table 2's LoRA chosen without test data: the best on the same shots
                steps.append(_stage(f"lora-pick:{sl.task}", pick_step, ident,
                                    PickRequest(few, tuple(eid for _, _, eid in loras), data_dir)))
                picked = steps[-1]["expert_id"]
                if picked not in {eid for eid, _ in mine}:
                    product = picked.partition(":")[0]
                    steps.append(_stage(f"eval:{sl.task}:{product}:picked", eval_step, ident,
                                        EvalRequest(ev, picked, sampler_for(product, prof.sampler), data_dir)))
        else:
            logger.info("few-shot %s: not searched (no train or valid split: shots never come from test; or "
                        "left out by the profile's adapt.few_shot_tasks)", sl.task)
        for strategy, few, label in strategies:
            req = AdaptRequest(ev, strategy, experts, prof.adapt.formulation,
                               cls["expert_id"] if strategy == "cls-expert" else None, few, sampler=prof.sampler,
                               data_dir=data_dir)
            steps.append(_stage(f"adapt:{label}:{sl.task}", adapt_step, ident, req))
            logger.info("%s on %s: accuracy %.3f", label, sl.task, steps[-1].get("accuracy") or 0.0)
    return steps


def _stage(name: str, step, ident, req) -> dict[str, Any]:
    state, secs = _timed(step, ident, req)
    return {"step": name, "state": state.name, "seconds": secs, **state.result()}


def _timed(step, *args):
    """(final state, wall seconds) of one task call: the time of each stage, as `t2 run` prints it."""
    t0 = time.perf_counter()
    state = step(*args, return_state=True)
    return state, time.perf_counter() - t0


@flow(name="ablations", log_prints=True)
def ablations_flow(profile: str = "smol", data_dir: str | None = None, seed: int | None = None,
                   sampler: str | None = None) -> dict[str, Any]:
    """Table 4 (paper §4.3): each variant of the profile's `ablations` (SVF or LoRA, trained by REINFORCE or
    next-token prediction, on MLP, attention or both) trained on one task with one step budget, then it and
    the base model evaluated on the task's test slice and the unseen slices. Cached and resumable like
    full-paper: a variant the profile already trained (same config) is reused, not retrained."""
    prof = _profile(profile, sampler)
    if not prof.ablations.variants:
        raise ConfigError(f"profile {profile} lists no ablations; use one that does (tiny, smol, paper).")
    seed = prof.seed_or_default(seed)
    get_task(prof.ablations.task).preflight()
    ident = load_model_step(prof.model, seed)
    steps = _ablation_stages(prof, ident, seed, _data_dir(data_dir))
    return {"profile": profile, "model": prof.model, "steps": steps}


def _ablation_stages(prof, ident, seed: int, data_dir: str | None) -> list[dict[str, Any]]:
    """Table 4's runs: each variant trained (or reused), then it and base on every ablation slice."""
    ab = prof.ablations
    steps: list[dict[str, Any]] = []
    for targets in dict.fromkeys(v.targets for v in ab.variants if v.entry.product == "svf"):
        steps.append(_stage(f"svd:{targets}", svd_step, ident, SvdRequest(targets)))
    products: list[tuple[str, str, str]] = []  # (label, method of the product, expert id)
    for v in ab.variants:
        cfg = prof.ablation_config(v, seed)
        if v.entry.objective == "pg":
            stage = _stage(f"ablation:{v.label}", train_step, ident,
                           TrainRequest(cfg, sampler_for(v.entry.product, prof.sampler), data_dir))
        else:
            stage = _stage(f"ablation:{v.label}", baseline_step, ident, BaselineRequest(cfg, data_dir))
        steps.append({**stage, "run_id": stage.get("expert_id", stage.get("run_id"))})
        products.append((v.label, v.entry.product, stage["expert_id"]))
    for sl in ab.evals:
        ev = prof.eval_config(sl, seed)
        steps.append(_stage(f"eval:{sl.task}", eval_step, ident, EvalRequest(ev, None, prof.sampler, data_dir)))
        for label, method, eid in products:
            steps.append(_stage(f"eval:{sl.task}:{label}", eval_step, ident,
                                EvalRequest(ev, eid, sampler_for(method, prof.sampler), data_dir)))
    return steps
