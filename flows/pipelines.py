"""Prefect flows: `svd`, `train-expert`, `full-paper`, `transfer`, `ablations` and `experts-api`.

`full-paper` chains: load model -> SVD (cached artifact) -> train one SVF expert per training task
(paper §4.1) -> train the profile's PEFT baselines (LoRA-NTP, LoRA-PG, ...) -> base-model evaluation of
every benchmark slice -> each expert and baseline on its own task's test slice (Table 1) ->
self-adaptation (paper §3.3, Table 2): the classification expert, a few-shot CEM search per unseen task,
base and every LoRA on the unseen slices, the two-pass evaluations with each strategy (prompt,
cls-expert, few-shot), and the LoRA chosen on the few-shot prompts; where the profile asks, the
ablations (Table 4) and cross-model transfer (paper §4.4). The stages are in flows/paper.py.

Every stage is planned from content and reused when the catalog has it, so rerunning after a crash
redoes only what is missing. `runner` says where the stages run (flows/runners.py): `local` (the
default: one after another in the flow's process) or `dask` (a nested flow run whose task runner is
prefect-dask's, on a LocalCluster of `workers` processes or the cluster at `address`).

`experts-api` trains the profile's experts through the same stages, exports them into a folder and serves
them with `t2 api`'s server (flows/experts_api.py).
"""

from __future__ import annotations

import dataclasses
import fnmatch
from typing import Any

from prefect import flow, get_run_logger

from catalog import Catalog
from catalog.experts import source_experts
from flows import experts_api, paper
from flows.runners import check_runner, dask_task_runner
from flows.stages import Stages, check_patterns_match, check_stage_patterns, load_model_step, summary
from t2core.errors import ConfigError
from t2core.experts import ExpertRef
from t2core.paths import resolve_data_dir
from t2core.profiles import Profile, get_profile
from t2core.tasks import get_task
from t2ops import svd, training


def _data_dir(data_dir: str | None) -> str | None:
    d = resolve_data_dir(data_dir)
    return str(d) if d else None


def _profile(name: str, sampler: str | None) -> Profile:
    """The profile a flow runs, with the sampler it was asked for (checked when the profile is rebuilt), or
    its own, where available (a vllm profile without the vLLM environment says so in one line, then uses hf)."""
    prof = get_profile(name)
    if sampler is not None:
        return dataclasses.replace(prof, sampler=sampler)
    prof, note = prof.with_sampler_available()
    if note:
        print(note)
    return prof


def _steps(S: Stages) -> list[dict[str, Any]]:
    for stage in S.by_run.values():  # every stage finished (and recorded) before the flow returns
        if stage.state != "Skipped":
            S.outcome(stage)
    rows = [summary(label, s, first) for label, s, first in S.listed]
    rows += [{"step": label, "state": "Blocked", "seconds": 0.0, "note": f"needs {need}"}
             for label, need in dict.fromkeys(S.blocked)]
    names = [r["step"] for r in rows]
    for pat in S.only:  # a pattern that matched nothing is said, not silently ignored
        if not any(fnmatch.fnmatchcase(n, pat) for n in names):
            print(f"--stages {pat!r}: no stage of this flow has that name (the run lists every stage's name)")
    return rows


@flow(name="svd", log_prints=True)
def svd_flow(model: str = "smollm2-135m", targets: str = "mlp", seed: int = 0) -> dict[str, Any]:
    S = Stages()
    S.outcome(S.submit("svd", svd.OP, load_model_step(model, seed), svd.SvdRequest(targets)))
    return _steps(S)[0]


@flow(name="train-expert", log_prints=True)
def train_expert_flow(task: str = "arc_easy", profile: str = "smol", data_dir: str | None = None,
                      seed: int | None = None, sampler: str | None = None) -> dict[str, Any]:
    """Train one SVF expert with the profile's settings for `task`."""
    prof = _profile(profile, sampler)
    req = training.TrainRequest(prof.rl_config(task, seed), prof.sampler, _data_dir(data_dir),
                                kl_grid=prof.kl_grid(task))
    get_task(task).preflight()  # e.g. no code sandbox: fail now, not after the SVD
    ident = load_model_step(prof.model, prof.seed_or_default(seed), prof.resolved_factor_dtype())
    S = Stages()
    S.outcome(S.submit("svd", svd.OP, ident, svd.SvdRequest(prof.targets)))
    S.outcome(S.submit(f"train:{task}", training.OP, ident, req))
    return _steps(S)[-1]


def _full_paper(S: Stages, profile: str, data_dir: str | None, seed: int | None, sampler: str | None
                ) -> dict[str, Any]:
    prof = _profile(profile, sampler)
    seed = prof.seed_or_default(seed)
    for name in dict.fromkeys([sl.task for sl in prof.evals] + [t.task for t in prof.trains + prof.baselines]):
        get_task(name).preflight()  # e.g. no code sandbox: fail in seconds, not after an hour of training
    ident = load_model_step(prof.model, seed, prof.resolved_factor_dtype())
    paper.full_paper(S, prof, ident, seed, _data_dir(data_dir), get_run_logger())
    return {"profile": profile, "model": prof.model, "weights_hash": ident.weights_hash, "steps": _steps(S)}


def _transfer(S: Stages, profile: str, dst: str | None, data_dir: str | None, seed: int | None,
              sampler: str | None) -> dict[str, Any]:
    prof = _profile(profile, sampler)
    dst = dst or prof.transfer.dst
    if not dst:
        raise ConfigError(f"profile {profile} names no transfer destination; pass one (`t2 run transfer --profile "
                          f"{profile} --dst qwen2.5-coder-0.5b`).")
    tasks = prof.transfer.experts or tuple(tr.task for tr in prof.trains)
    ids = source_experts(Catalog(), prof.model, tasks, prof.targets)
    sources = {ExpertRef.resolve(e).header.task: e for e in ids}
    seed = prof.seed_or_default(seed)
    paper.transfer_stages(S, prof, load_model_step(dst, seed, prof.resolved_factor_dtype()), sources, seed, _data_dir(data_dir),
                          get_run_logger())
    return {"profile": profile, "model": prof.model, "dst": dst, "steps": _steps(S)}


def _ablations(S: Stages, profile: str, data_dir: str | None, seed: int | None, sampler: str | None
               ) -> dict[str, Any]:
    prof = _profile(profile, sampler)
    if not prof.ablations.variants:
        raise ConfigError(f"profile {profile} lists no ablations; use one that does (tiny, smol, paper).")
    seed = prof.seed_or_default(seed)
    get_task(prof.ablations.task).preflight()
    paper.ablation_stages(S, prof, load_model_step(prof.model, seed, prof.resolved_factor_dtype()), seed, _data_dir(data_dir))
    return {"profile": profile, "model": prof.model, "steps": _steps(S)}


_BODIES = {"full-paper": _full_paper, "transfer": _transfer, "ablations": _ablations}


@flow(name="stages", log_prints=True)
def dask_stages_flow(body: str, params: dict[str, Any], gpu: bool = False, only: tuple[str, ...] = ()
                     ) -> dict[str, Any]:
    """A staged flow's body with its stages submitted to the Dask task runner this flow is given."""
    return _BODIES[body](Stages(concurrent=True, gpu=gpu, only=tuple(only)), **params)


def stage_patterns(stages: str | None) -> tuple[str, ...]:
    """`--stages`: comma-separated patterns of stage names (fnmatch), checked; none: the whole flow. Given
    but empty ('', ',') is refused: it would otherwise run the whole flow, the opposite of a part."""
    patterns = tuple(p.strip() for p in (stages or "").split(",") if p.strip())
    if stages is not None and not patterns:
        raise ConfigError(f"--stages {stages!r} names no stage; give patterns such as 'train:mbpp,eval:humaneval*' "
                          "(the run lists every stage's name), or leave --stages out to run the whole flow.")
    return check_stage_patterns(patterns)


def check_stages(body: str, params: dict[str, Any], stages: str | None) -> tuple[str, ...]:
    """`--stages` of a run of `body` with `params`: the patterns, each matching a stage this run would list
    (the plan's walk of the same stage bodies names them without loading a model); checked by the CLI before a
    Prefect server starts and again by the flow itself (a deployment run)."""
    only = stage_patterns(stages)
    if only:
        from flows.plan import stage_names

        prof = get_profile(params["profile"])
        if params.get("sampler"):
            prof = dataclasses.replace(prof, sampler=params["sampler"])
        if params.get("dst"):
            prof = dataclasses.replace(prof, transfer=dataclasses.replace(prof.transfer, dst=params["dst"]))
        check_patterns_match(only, stage_names(prof, body, params.get("seed"), _data_dir(params.get("data_dir"))),
                             body)
    return only


def _run(body: str, params: dict[str, Any], runner: str | None, address: str | None, workers: int | None,
         gpus_per_worker: int | None = None, stages: str | None = None) -> dict[str, Any]:
    only = check_stages(body, params, stages)
    runner = check_runner(runner or _profile(params["profile"], params.get("sampler")).runner)
    if runner == "dask":
        task_runner = dask_task_runner(address, workers, gpus_per_worker)
        return dask_stages_flow.with_options(task_runner=task_runner)(body, params, bool(gpus_per_worker), only)
    return _BODIES[body](Stages(only=only), **params)


@flow(name="full-paper", log_prints=True)
def full_paper_flow(profile: str = "smol", data_dir: str | None = None, seed: int | None = None,
                    sampler: str | None = None, runner: str | None = None, address: str | None = None,
                    workers: int | None = None, gpus_per_worker: int | None = None, stages: str | None = None
                    ) -> dict[str, Any]:
    """The whole paper pipeline for one profile: SVD, experts, baselines, evaluations, adaptation, and the
    ablations and transfer where the profile asks for them. `sampler` overrides the profile's; `runner`
    (local or dask, default the profile's), `address`, `workers` and `gpus_per_worker` say where the
    stages run (flows/runners.py); `stages` (comma-separated patterns such as 'train:mbpp,eval:humaneval*')
    runs only a part of it (flows/stages.py)."""
    params = {"profile": profile, "data_dir": data_dir, "seed": seed, "sampler": sampler}
    return _run("full-paper", params, runner, address, workers, gpus_per_worker, stages)


@flow(name="transfer", log_prints=True)
def transfer_flow(profile: str = "smol", dst: str | None = None, data_dir: str | None = None,
                  seed: int | None = None, sampler: str | None = None, runner: str | None = None,
                  address: str | None = None, workers: int | None = None, gpus_per_worker: int | None = None,
                  stages: str | None = None) -> dict[str, Any]:
    """Move the profile model's experts (from the catalog: run full-paper first) to `dst` (default: the
    profile's transfer.dst) and evaluate them there with the controls (Tables 5 and 9)."""
    params = {"profile": profile, "dst": dst, "data_dir": data_dir, "seed": seed, "sampler": sampler}
    return _run("transfer", params, runner, address, workers, gpus_per_worker, stages)


@flow(name="ablations", log_prints=True)
def ablations_flow(profile: str = "smol", data_dir: str | None = None, seed: int | None = None,
                   sampler: str | None = None, runner: str | None = None, address: str | None = None,
                   workers: int | None = None, gpus_per_worker: int | None = None, stages: str | None = None
                   ) -> dict[str, Any]:
    """Table 4 (paper §4.3): each variant of the profile's `ablations` (SVF or LoRA, trained by REINFORCE or
    next-token prediction, on MLP, attention or both) trained on one task with one step budget, then it and
    the base model evaluated on the task's test slice and the unseen slices. Cached and resumable like
    full-paper: a variant the profile already trained (same config) is reused, not retrained."""
    params = {"profile": profile, "data_dir": data_dir, "seed": seed, "sampler": sampler}
    return _run("ablations", params, runner, address, workers, gpus_per_worker, stages)


@flow(name="experts-api", log_prints=True)
def experts_api_flow(profile: str = "smol", out: str | None = None, host: str = "127.0.0.1", port: int = 8000,
                     strategy: str = "prompt", sampler: str = "hf", serve: bool = True, peft_rank: str | int | None = None,
                     data_dir: str | None = None, seed: int | None = None, backend: str = "t2") -> dict[str, Any]:
    """The profile's SVF experts (and its classification expert for `strategy` cls-expert) trained or read back
    from the catalog, exported as packages into `out` (and as PEFT LoRA adapters with `peft_rank`: auto or a
    number), then served by `t2 api`'s server on `host:port` until the run is stopped (`serve` False: return
    after the export). `sampler` is what the server generates with (`backend` t2), or `backend` vllm has vLLM's own
    OpenAI server answer (`t2 api --backend`); the experts train with the profile's own sampler, so they are the
    full-paper flow's."""
    sampler = sampler or "hf"
    _, folder = experts_api.check_params(profile, out, host, port, strategy, sampler, peft_rank, serve, backend)
    return experts_api.experts_api(_profile(profile, None), folder, host, port, strategy, sampler, peft_rank, serve,
                                   _data_dir(data_dir), seed, backend)
