"""`t2 models`, `t2 tasks`, `t2 profiles`, `t2 doctor`: what is registered, and what this machine is."""

from __future__ import annotations

from t2cli.common import app, console, handle_errors, rich_table


@app.command()
@handle_errors
def models() -> None:
    """List registered model aliases (any HF id or local directory also works)."""
    from t2core.models import get_model_spec, model_aliases

    rows = [(a, get_model_spec(a).description, "yes" if get_model_spec(a).needs_gpu else "") for a in model_aliases()]
    console.print(rich_table("models", ["alias", "description", "GPU"], rows))


@app.command()
@handle_errors
def tasks() -> None:
    """List benchmarks, their splits and families."""
    from t2core.tasks import get_task, task_names

    rows = [(n, get_task(n).family, get_task(n).output_type, ", ".join(get_task(n).splits), get_task(n).version)
            for n in task_names()]
    console.print(rich_table("tasks", ["task", "family", "answers", "splits", "version"], rows))


@app.command()
@handle_errors
def profiles() -> None:
    """List run profiles (tiny, smol, paper, ...)."""
    from t2core.precision import resolve_dtype
    from t2core.profiles import get_profile, profile_names

    rows = []
    for n in profile_names():
        p = get_profile(n)
        slices = ", ".join(f"{e.task}[:{e.limit}]" if e.limit else e.task for e in p.evals)
        rows.append((n, p.model, p.dtype if p.dtype != "auto" else f"auto ({resolve_dtype('auto')} here)", slices,
                     p.description))
    console.print(rich_table("profiles", ["profile", "model", "dtype", "eval slices", "description"], rows))


@app.command()
@handle_errors
def doctor() -> None:
    """Explain this machine: CPU and bf16, the dtype auto picks and why, threads, GPU, sandbox, vLLM, paths."""
    from t2cli.doctor import rows

    for what, value in rows():
        console.print(f"[bold]{what:>12}[/]  {value}", highlight=False, soft_wrap=True)
