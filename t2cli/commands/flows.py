"""`t2 run` and `t2 serve`: the Prefect flows, in-process or served as deployments."""

from __future__ import annotations

import typer

from t2cli.common import app, console, handle_errors, quiet_transformers, rich_table


@app.command()
@handle_errors
def run(
    flow: str = typer.Argument(..., help="a flow of flows/listing.py: {flows}"),
    task: str = typer.Option("arc_easy", help="train-expert: the training task"),
    dst: str | None = typer.Option(None, help="transfer: destination model (default: the profile's transfer.dst)"),
    profile: str = typer.Option("smol", help="profile: {profiles} (see `t2 profiles`)"),
    data_dir: str | None = typer.Option(None, help="dataset directory"),
    seed: int | None = typer.Option(None, help="seed (default: the profile's)"),
    sampler: str | None = typer.Option(None, help="sampler of evaluations and SVF rollouts: {samplers} "
                                                  "(default: the profile's; experts-api: what its server "
                                                  "generates with, default hf)"),
    runner: str | None = typer.Option(None, help="where the stages run: local (one after another) or dask "
                                                 "(concurrently on Dask workers); default: the profile's"),
    address: str | None = typer.Option(None, help="dask: the scheduler of a running cluster (tcp://HOST:8786); "
                                                  "default: a LocalCluster on this machine"),
    workers: int | None = typer.Option(None, help="dask without --address: worker processes (default 2, or one "
                                                  "per GPU group), each with its share of the cores"),
    gpus_per_worker: int | None = typer.Option(None, help="dask on a CUDA machine: GPUs each worker owns "
                                                          "(CUDA_VISIBLE_DEVICES); stages ask for one"),
    stages: str | None = typer.Option(None, help="a part of a staged flow: comma-separated patterns of stage "
                                                 "names, e.g. 'train:mbpp,eval:humaneval*' (other stages are read "
                                                 "back from the catalog or skipped)"),
    memory_gb: float | None = typer.Option(None, help="host memory budget in GB the run must fit (default: "
                                                      "$T2_MEMORY_GB, else this machine's memory less 15%); "
                                                      "checked by `t2 plan` before anything starts"),
    out_dir: str | None = typer.Option(None, "--out", help="experts-api: the folder the experts are exported into"),
    host: str | None = typer.Option(None, help="experts-api: the address `t2 api`'s server listens on "
                                               "(default 127.0.0.1)"),
    port: int | None = typer.Option(None, help="experts-api: the server's port (default 8000)"),
    strategy: str | None = typer.Option(None, help="experts-api: pass 1 of `t2-auto`: {question_strategies} "
                                                   "(default prompt; cls-expert also trains the classification "
                                                   "expert)"),
    serve: bool | None = typer.Option(None, "--serve/--no-serve", help="experts-api: serve after the export "
                                                                       "(default), or stop there"),
    peft_rank: str | None = typer.Option(None, help="experts-api: also export each expert as a PEFT LoRA adapter "
                                                    "of this rank (a number, or auto)"),
    backend: str | None = typer.Option(None, help="experts-api: who answers, as `t2 api --backend`: t2 (default) or "
                                                  "vllm (vLLM's own OpenAI server)"),
) -> None:
    """Run a Prefect flow in-process (an ephemeral Prefect API starts if none is configured)."""
    quiet_transformers()
    from flows.listing import flow_names, get_flow
    from flows.runners import check_address, check_runner
    from t2core.errors import ConfigError
    from t2core.profiles import get_profile
    from t2core.sampling import check_sampler
    from t2core.tasks import get_task

    prof = get_profile(profile)
    entry = get_flow(flow)  # every name is checked before a Prefect server starts
    if sampler is not None:
        check_sampler(sampler)
    if runner is not None:
        check_runner(runner)
    if not entry.staged and (runner, address, workers, gpus_per_worker, stages) != (None,) * 5:
        raise ConfigError(f"--runner, --address, --workers, --gpus-per-worker and --stages apply to the staged flows "
                          f"(full-paper, transfer, ablations), not to {flow}; drop them.")
    if gpus_per_worker is not None and (gpus_per_worker < 1 or address or (runner or prof.runner) != "dask"):
        raise ConfigError(f"--gpus-per-worker {gpus_per_worker}: give a count >= 1, with --runner dask and no "
                          "--address (a cluster of your own sets its workers' GPUs itself).")
    if gpus_per_worker is not None:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--gpus-per-worker {gpus_per_worker}: this machine has no CUDA device; drop it.")
    if address and (runner or prof.runner) != "dask":
        raise ConfigError(f"--address {address} names a Dask scheduler; add --runner dask.")
    if workers is not None and (workers < 1 or address):
        raise ConfigError(f"--workers {workers}: give a count >= 1, and only for a LocalCluster (without --address).")
    if address:
        check_address(address)
    flow_only = {"out": out_dir, "host": host, "port": port, "strategy": strategy, "serve": serve, "peft_rank": peft_rank,
                 "backend": backend}
    for name, value in flow_only.items():
        if value is not None and name not in entry.options:
            takers = [n for n in flow_names() if name in get_flow(n).options]
            raise ConfigError(f"--{name.replace('_', '-')} applies to {', '.join(takers)}, not to {flow}; drop it.")
    if flow == "train-expert":
        get_task(task)
    only: tuple[str, ...] = ()
    if stages is not None:  # each pattern must name a stage of this run: checked before a Prefect server starts
        from flows.pipelines import check_stages

        only = check_stages(flow, {"profile": profile, "data_dir": data_dir, "seed": seed, "sampler": sampler,
                                   "dst": dst}, stages)
    if entry.staged and not address:  # a cluster's workers have their own memory: only a local run is checked here
        _check_fits(prof, flow, sampler, data_dir, memory_gb, dst, only)
    params = entry.params(prof, {"data_dir": data_dir, "seed": seed, "sampler": sampler, "dst": dst, "task": task,
                                 "runner": runner, "address": address, "workers": workers,
                                 "gpus_per_worker": gpus_per_worker, "stages": stages, **flow_only})
    if entry.check is not None:  # the flow's own parameters, before a Prefect server starts
        entry.check(params)
    out = entry.flow(**params)
    if not entry.staged:
        console.print(out)
        return
    rows = [(s["step"], s["state"], s.get("accuracy"), f"{s.get('seconds', 0):.1f}", s.get("worker", ""),
             s.get("run_id") or s.get("key"), s.get("note") or ("reused" if s.get("reused") else ""))
            for s in out["steps"]]
    total = sum(s.get("seconds", 0) for s in out["steps"])
    console.print(rich_table(f"{flow} [{profile}] {out['model']}" + (f" -> {out['dst']}" if "dst" in out else "")
                             + f": {total / 60:.1f} min in the stages",
                             ["step", "state", "accuracy", "s", "worker", "id", "note"], rows))
    groups: dict[str, float] = {}
    peaks: dict[str, float] = {}
    for s in out["steps"]:  # the stage times at the end, by kind (train, baseline, eval, adapt, ...)
        kind = s["step"].split(":")[0]
        groups[kind] = groups.get(kind, 0.0) + s.get("seconds", 0)
        if s.get("peak_mb"):  # the highest peak memory of a stage of that kind (t2core/memory.py)
            peaks[kind] = max(peaks.get(kind, 0.0), s["peak_mb"])
    console.print("stage times: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in groups.items())
                  + f"; {total / 60:.1f} min in all", highlight=False)
    if peaks:
        console.print("peak memory: " + ", ".join(f"{k} {v / 1024:.2f} GB" for k, v in peaks.items())
                      + " (each stage's process, from its start; `t2 catalog ls metrics`)", highlight=False)


def _check_fits(prof, flow: str, sampler: str | None, data_dir: str | None, memory_gb: float | None,
                dst: str | None, only: tuple[str, ...] = ()) -> None:
    """Refuse, in one line and before a Prefect server starts, a profile whose plan does not fit this machine's
    devices and memory budget (`t2 plan` lists each stage's needs); with `--stages`, the plan of the stages
    they select (the others are read back, not run)."""
    import dataclasses

    from flows.plan import fit_plan
    from t2core.errors import ConfigError
    from t2core.plan.devices import devices_for

    if sampler is not None:
        prof = dataclasses.replace(prof, sampler=sampler)
    if dst:
        prof = dataclasses.replace(prof, transfer=dataclasses.replace(prof.transfer, dst=dst))
    plan = fit_plan(prof, devices_for(None, memory_gb=memory_gb), flow, data_dir=data_dir, only=only)
    why = plan.misfit()
    if why is not None:
        raise ConfigError(f"profile {prof.name} does not fit this machine: {why}; {plan.advice()} (`t2 plan "
                          f"--profile {prof.name}` lists every stage's needs).")


@app.command()
@handle_errors
def serve(
    profile: str = typer.Option("smol", help="default profile of the full-paper deployment"),
    limit: int | None = typer.Option(None, help="max concurrent flow runs"),
) -> None:
    """Serve every flow as a deployment (flows/listing.py; then: prefect deployment run full-paper/full-paper)."""
    quiet_transformers()
    from flows.serve import serve as do_serve

    do_serve(profile, limit)


@app.command()
@handle_errors
def deploy(
    pool: str = typer.Option(..., help="the process work pool to register the deployments on (created if missing)"),
    profile: str = typer.Option("smol", help="default profile of the deployments"),
) -> None:
    """Register every flow as a deployment on a Prefect work pool; then `prefect worker start --pool POOL`
    on any machine where t2 is installed, and `prefect deployment run full-paper/full-paper`."""
    quiet_transformers()
    from flows.serve import deploy as do_deploy

    names = do_deploy(pool, profile)
    console.print(f"work pool [bold]{pool}[/]: {', '.join(names)}")
    console.print(f"start a worker with `prefect worker start --pool {pool}`, then `prefect deployment run "
                  "full-paper/full-paper`")
