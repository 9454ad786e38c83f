"""Prefect flows: `svd`, `train-expert` and `full-paper`.

`full-paper` chains: load model -> SVD (cached artifact) -> train one SVF expert per
training task (paper §4.1) -> train the profile's PEFT baselines (LoRA-NTP, LoRA-PG, ...)
-> base-model evaluation of every benchmark slice -> each expert and baseline on its own
task's test slice (Table 1). Later stages (dispatcher, CEM, adapted
evaluation on unseen tasks) join the chain as their issues land. Each task is cached by
content, so rerunning after a crash redoes only what is missing.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger

from flows.steps import baseline_step, data_dir_str, eval_step, load_model_step, svd_step, train_step
from t2core.faults import fault_injection_point
from t2core.profiles import get_profile
from t2core.sampling import GenerationConfig
from t2core.tasks import get_task


@flow(name="svd", log_prints=True)
def svd_flow(model: str = "smollm2-135m", targets: str = "mlp", seed: int = 0) -> dict[str, Any]:
    ident = load_model_step(model, seed)
    return svd_step(ident, targets)


@flow(name="train-expert", log_prints=True)
def train_expert_flow(task: str = "arc_easy", profile: str = "smol", data_dir: str | None = None,
                      seed: int | None = None) -> dict[str, Any]:
    """Train one SVF expert with the profile's settings for `task`."""
    prof = get_profile(profile)
    seed = prof.seed if seed is None else seed
    get_task(task).preflight()  # e.g. no code sandbox: fail now, not after the SVD
    ident = load_model_step(prof.model, seed)
    svd_step(ident, prof.targets)
    return train_step(ident, task, prof.train_overrides(task), prof.targets, data_dir_str(data_dir))


def _gen(prof, task_name: str, seed: int) -> dict[str, Any]:
    gen = asdict(GenerationConfig(batch_size=prof.batch_size, dtype=prof.dtype, seed=seed))
    if prof.max_new_tokens is not None:
        gen["max_new_tokens"] = min(prof.max_new_tokens, get_task(task_name).max_new_tokens)
    return gen


@flow(name="full-paper", log_prints=True)
def full_paper_flow(profile: str = "smol", data_dir: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """The whole paper pipeline for one profile (so far: SVD, experts, baselines, Table 1 evaluations)."""
    prof = get_profile(profile)
    seed = prof.seed if seed is None else seed
    for name in dict.fromkeys([sl.task for sl in prof.evals] + [t.task for t in prof.trains + prof.baselines]):
        get_task(name).preflight()  # e.g. no code sandbox: fail in seconds, not after an hour of training
    logger = get_run_logger()
    data_dir = data_dir_str(data_dir)
    ident = load_model_step(prof.model, seed)
    steps: list[dict[str, Any]] = []
    svd_state = svd_step(ident, prof.targets, return_state=True)
    steps.append({"step": "svd", "state": svd_state.name, **svd_state.result()})
    experts: dict[str, str] = {}
    for tr in prof.trains:
        state = train_step(ident, tr.task, tr.rl_kwargs(), prof.targets, data_dir, return_state=True)
        out = state.result()
        experts[tr.task] = out["path"]
        steps.append({"step": f"train:{tr.task}", "state": state.name, "run_id": out["expert_id"],
                      "accuracy": out["metrics"].get("best_valid"), "reused": out["reused"]})
        logger.info("expert %s: validation %.3f (base %.3f)", out["expert_id"], out["metrics"].get("best_valid", 0),
                    out["metrics"].get("base_valid", 0))
    adapters: list[tuple[str, str, str]] = []  # (task, method, adapter id)
    for bl in prof.baselines:
        if bl.method == "lora-pg":  # the same REINFORCE loop as the SVF expert, on LoRA
            kw = {**prof.train_overrides(bl.task), **bl.kwargs(), "method": "lora"}
            state = train_step(ident, bl.task, kw, prof.targets, data_dir, return_state=True)
        else:
            state = baseline_step(ident, bl.task, bl.method, bl.kwargs(), data_dir, return_state=True)
        out = state.result()
        adapters.append((bl.task, bl.method, out["adapter"]))
        steps.append({"step": f"baseline:{bl.method}:{bl.task}", "state": state.name, "run_id": out["adapter"],
                      "reused": out["reused"]})
    slices = {sl.task: sl for sl in prof.evals}
    evals = [(sl, None, None, "base") for sl in prof.evals]
    evals += [(slices[t], path, None, "svf") for t, path in experts.items() if t in slices]
    evals += [(slices[t], None, aid, method) for t, method, aid in adapters if t in slices]
    for sl, expert, adapter, method in evals:
        state = eval_step(ident, sl.task, sl.split, sl.limit, _gen(prof, sl.task, seed), data_dir, expert, adapter,
                          return_state=True)
        out = state.result()
        name = f"eval:{sl.task}" + ("" if method == "base" else f":{method}")
        steps.append({"step": name, "state": state.name, **out})
        logger.info("%s/%s: accuracy %.3f (%s)", name, sl.split, out.get("accuracy") or 0.0, state.name)
        fault_injection_point("eval")
    return {"profile": profile, "model": prof.model, "weights_hash": ident["weights_hash"], "steps": steps}
