"""`t2 eval`: one evaluation of the base model, an SVF expert or a baseline adapter."""

from __future__ import annotations

import typer

from t2cli import common
from t2cli.common import app, console, handle_errors, progress_bar, quiet_transformers


@app.command("eval")
@handle_errors
def eval_cmd(
    model: str = typer.Option("smollm2-135m", help="model alias, HF id or local directory"),
    task: str = typer.Option(..., help="benchmark name (see `t2 tasks`)"),
    split: str = typer.Option("test", help="split to evaluate"),
    limit: int | None = typer.Option(None, help="first N samples of the split"),
    batch_size: int = typer.Option(16, help="generation batch size"),
    dtype: str = typer.Option("auto", help="auto (this machine's faster; see `t2 doctor`), float32 or bfloat16 "
                                           "(autocast; ~2x faster on avx512_bf16 CPUs, ~6x slower on AVX2 ones)"),
    max_new_tokens: int | None = typer.Option(None, help="new-token cap (default: the task's)"),
    data_dir: str | None = typer.Option(None, help="dataset directory (default: $T2_DATA_DIR or ../shared/datasets)"),
    seed: int = typer.Option(0, help="random seed"),
    force: bool = typer.Option(False, help="re-evaluate even if this exact run is already in the catalog"),
    scoring: str = typer.Option("t2", help="who judges the outputs: " + common.scoring_help()),
    expert: str | None = typer.Option(None, help="what to apply: an expert id from `t2 catalog ls experts` "
                                                 "(svf:<hex> for SVF experts, lora:<id>, ia3:<id>, ... for "
                                                 "baselines) or an SVF expert file"),
    adapter: str | None = typer.Option(None, help="a PEFT baseline adapter id (the same as --expert <method>:<id>)"),
    sampler: str = typer.Option("hf", help="hf (in-process), proc (its own copy of the model in another process, "
                                            "fed SVF vectors only) or vllm (a vLLM server in .venv-vllm, fed SVF "
                                            "vectors; `make vllm-env`)"),
) -> None:
    """Greedy evaluation of the base model (or with an SVF expert); accuracy and per-sample rows go into the catalog."""
    quiet_transformers()
    from catalog import Catalog
    from catalog.execute import execute
    from t2core.errors import ConfigError
    from t2core.evaluate import EvalConfig
    from t2core.paths import resolve_data_dir
    from t2core.sampling import GenerationConfig
    from t2core.variants import check_ref
    from t2ops import evaluation as op
    from t2ops.model import ident_of
    from t2ops.operation import Hooks

    if expert and adapter:
        raise ConfigError(f"both --expert {expert!r} and --adapter {adapter!r} given; evaluate one at a time.")
    if adapter and ":" not in adapter:
        adapter = f"{_adapter_method(adapter)}:{adapter}"
    gen = GenerationConfig(batch_size=batch_size, dtype=dtype, seed=seed, max_new_tokens=max_new_tokens)
    req = op.EvalRequest(EvalConfig(task=task, split=split, limit=limit, generation=gen, scoring=scoring),
                         expert or adapter, sampler,
                         data_dir)
    check_ref(expert or adapter)  # found and verified before the model loads
    resolve_data_dir(data_dir)  # a missing data directory too
    loaded = common.load(model, seed)
    plan = op.OP.plan(req, ident_of(loaded, model))  # bad references fail here, before any catalog write
    cat = Catalog()
    prog = progress_bar(transient=False)
    bar = prog.add_task(f"{task}/{split}", total=len(plan.core.dataset))

    def advance(n: int) -> None:  # the bar appears once generation starts (not for a run found in the catalog)
        prog.start()
        prog.advance(bar, n)

    try:
        out = execute(op.OP, req, loaded, cat, force=force, hooks=Hooks(progress=advance), plan=plan)
    finally:
        prog.stop()
    if out.reused:
        console.print(f"run {out.run_id} is already in the catalog (use --force to redo): accuracy {out.accuracy:.4f}")
        return
    if out.same_as:
        console.print(f"{out.variant} has z = 1 everywhere, so its weights are the base model's: run {out.run_id} "
                      f"records base run {out.same_as}'s results (accuracy {out.accuracy:.4f})")
        return
    res = out.result
    m = res.metrics
    console.print(f"[bold]{model}[/] ({out.variant}) {task}/{split}: accuracy [bold]{res.accuracy:.4f}[/] "
                  f"({int(m['n_correct'])}/{int(m['n'])})  {res.seconds:.1f}s  "
                  + (f"{m['tokens_per_s']:.1f} new tok/s" if m["new_tokens"] else f"{m['n'] / res.seconds:.1f} items/s"))
    console.print(f"run {out.run_id}: {len(res.samples)} sample rows in {cat.path}")


def _adapter_method(adapter_id: str) -> str:
    """The method a bare adapter id was trained with (from its manifest), so --adapter <id> keeps working."""
    from t2core.adapters import KIND
    from t2core.artifacts import ArtifactStore
    from t2core.errors import ConfigError

    store = ArtifactStore()
    if not store.exists(KIND, adapter_id):
        raise ConfigError(f"adapter {adapter_id!r} is not in the store; pass an id from `t2 catalog ls experts`.")
    return store.manifest(KIND, adapter_id).meta.get("method", "lora")


@app.command("rejudge")
@handle_errors
def rejudge_cmd(
    run: str = typer.Argument(..., help="a completed evaluation's run id (or a unique prefix; see `t2 catalog ls runs`)"),
    scoring: str = typer.Option("t2", help="who judges the outputs: " + common.scoring_help()),
    data_dir: str | None = typer.Option(None, help="dataset directory (default: $T2_DATA_DIR or ../shared/datasets)"),
    force: bool = typer.Option(False, help="re-judge even if this exact re-judgement is already in the catalog"),
) -> None:
    """Score a stored evaluation's outputs again, generating nothing (after a task version bump, or with
    another scoring scheme); recorded as a new run linked to the old one (`t2 compare` pairs them)."""
    from catalog import Catalog
    from catalog.execute import execute_plan
    from catalog.stored import stored_eval
    from t2core.scoring import check_scheme
    from t2ops import rejudge as op

    check_scheme(scoring)
    cat = Catalog()
    src = stored_eval(cat, run)
    plan = op.OP.plan(op.RejudgeRequest(src, scoring, data_dir))
    out = execute_plan(op.OP, plan, None, cat, force=force)
    said = "already in the catalog" if out.reused else "recorded"
    console.print(f"{src.task}/{src.split} {src.variant.name}: run {src.run_id[:12]} ({src.task_version}) "
                  f"{out.source_accuracy:.4f} -> {out.accuracy:.4f} judged by {scoring} (task version "
                  f"{plan.row.task_version}); {out.changed} of {out.n} verdicts changed; {said} as run {out.run_id}",
                  highlight=False)
