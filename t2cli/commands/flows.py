"""`t2 run` and `t2 serve`: the Prefect flows, in-process or served as deployments."""

from __future__ import annotations

import typer

from t2cli.common import app, console, handle_errors, quiet_transformers, rich_table


@app.command()
@handle_errors
def run(
    flow: str = typer.Argument(..., help="full-paper, train-expert, transfer, ablations or svd"),
    task: str = typer.Option("arc_easy", help="train-expert: the training task"),
    dst: str | None = typer.Option(None, help="transfer: destination model (default: the profile's transfer.dst)"),
    profile: str = typer.Option("smol", help="profile: tiny, smol, paper (see `t2 profiles`)"),
    data_dir: str | None = typer.Option(None, help="dataset directory"),
    seed: int | None = typer.Option(None, help="seed (default: the profile's)"),
    sampler: str | None = typer.Option(None, help="sampler of evaluations and SVF rollouts: hf, proc or vllm "
                                                  "(default: the profile's)"),
) -> None:
    """Run a Prefect flow in-process (an ephemeral Prefect API starts if none is configured)."""
    quiet_transformers()
    from t2core.errors import UnknownNameError
    from t2core.profiles import get_profile

    prof = get_profile(profile)
    from flows.pipelines import ablations_flow, full_paper_flow, svd_flow, train_expert_flow, transfer_flow
    from t2core.sampling import check_sampler
    from t2core.tasks import get_task

    kw = {"profile": profile, "data_dir": data_dir, "seed": seed, "sampler": sampler}
    staged = {"full-paper": lambda: full_paper_flow(**kw),
              "transfer": lambda: transfer_flow(dst=dst, **kw),
              "ablations": lambda: ablations_flow(**kw)}
    if flow not in (*staged, "train-expert", "svd"):  # every name is checked before a Prefect server starts
        raise UnknownNameError("flow", flow, [*staged, "train-expert", "svd"])
    if sampler is not None:
        check_sampler(sampler)
    if flow == "train-expert":
        get_task(task)
    if flow in staged:
        out = staged[flow]()
        rows = [(s["step"], s["state"], s.get("accuracy"), f"{s.get('seconds', 0):.1f}", s.get("run_id") or s.get("key"),
                 "reused" if s.get("reused") else "")
                for s in out["steps"]]
        total = sum(s.get("seconds", 0) for s in out["steps"])
        console.print(rich_table(f"{flow} [{profile}] {out['model']}" + (f" -> {out['dst']}" if "dst" in out else "")
                             + f": {total / 60:.1f} min in the stages",
                             ["step", "state", "accuracy", "s", "id", "note"], rows))
        groups: dict[str, float] = {}
        for s in out["steps"]:  # the stage times at the end, by kind (train, baseline, eval, adapt, ...)
            kind = s["step"].split(":")[0]
            groups[kind] = groups.get(kind, 0.0) + s.get("seconds", 0)
        console.print("stage times: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in groups.items())
                      + f"; {total / 60:.1f} min in all", highlight=False)
    elif flow == "train-expert":
        out = train_expert_flow(task=task, **kw)
        console.print(out)
    elif flow == "svd":
        out = svd_flow(model=prof.model, targets=prof.targets, seed=prof.seed_or_default(seed))
        console.print(out)
    else:
        raise UnknownNameError("flow", flow, [*staged, "train-expert", "svd"])


@app.command()
@handle_errors
def serve(
    profile: str = typer.Option("smol", help="default profile of the full-paper deployment"),
    limit: int | None = typer.Option(None, help="max concurrent flow runs"),
) -> None:
    """Serve the full-paper, transfer, ablations, train-expert and svd deployments (then: prefect deployment run
    full-paper/full-paper)."""
    quiet_transformers()
    from flows.serve import serve as do_serve

    do_serve(profile, limit)
