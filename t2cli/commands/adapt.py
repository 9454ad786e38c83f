"""`t2 adapt` and `t2 ask`: two-pass self-adaptation (paper §3.3) on a task, or on one question."""

from __future__ import annotations

import typer

from t2cli import common
from t2cli.common import app, console, handle_errors, quiet_transformers


def _check_options(experts: str | None, cls_expert: str | None, formulation: str | None) -> None:
    """What the command line names, checked before the model loads (minutes at 8B): the formulation, and each
    expert id found and verified."""
    from t2core.adapt.prompt import FORMULATIONS
    from t2core.errors import ConfigError
    from t2core.experts import ExpertRef

    if formulation is not None and formulation not in FORMULATIONS:
        raise ConfigError(f"--formulation {formulation!r} must be one of {', '.join(FORMULATIONS)}.")
    for ref in [e.strip() for e in (experts or "").split(",") if e.strip()] + ([cls_expert] if cls_expert else []):
        ExpertRef.resolve(ref)


@app.command()
@handle_errors
def adapt(
    strategy: str = typer.Option(..., help="{strategies} (paper §3.3)"),
    task: str = typer.Option(..., help="the (unseen) task to evaluate two-pass, e.g. arc_challenge_cloze, math"),
    profile: str = typer.Option("smol", help="profile whose settings are the defaults (model, batch, dtype, "
                                             "CEM): {profiles}"),
    model: str | None = typer.Option(None, help="model alias, HF id or local directory (default: the profile's)"),
    limit: int | None = typer.Option(None, help="first N test samples (default: the whole split)"),
    experts: str | None = typer.Option(None, help="comma-separated expert ids (one per category; default: the "
                                                  "stored experts of the profile's training tasks)"),
    cls_expert: str | None = typer.Option(None, help="classification expert id (default: the stored one trained "
                                                     "on the dispatch task)"),
    formulation: str | None = typer.Option(None, help="pass 1 of prompt / cls-expert: generate (paper) or choice"),
    shots: int | None = typer.Option(None, help="few-shot: number of shots (default: the profile's)"),
    shot_split: str = typer.Option("train", help="few-shot: where the shots come from (train or valid, never test)"),
    sampler: str | None = typer.Option(None, help="{samplers} (default: the profile's)"),
    data_dir: str | None = typer.Option(None, help="dataset directory"),
    seed: int | None = typer.Option(None, help="random seed (default: the profile's)"),
    force: bool = typer.Option(False, help="redo the evaluation even if it is in the catalog"),
) -> None:
    """Two-pass self-adaptation on a task: pass 1 picks the expert (or CEM finds a mixture), pass 2 answers."""
    quiet_transformers()
    from catalog import Catalog
    from catalog.execute import execute
    from t2core.adapt import check_strategy, strategy_class
    from t2core.profiles import get_profile
    from t2core.sampling import check_sampler
    from t2core.tasks import get_task
    from t2ops import adaptation as op
    from t2ops.model import ident_of
    from t2ops.operation import Hooks

    prof = get_profile(profile)
    if sampler is None:
        prof, note = prof.with_sampler_available()
        if note:
            console.print(note, highlight=False)
    check_strategy(strategy)  # names first: one line naming the known ones, before any model loads
    check_sampler(sampler or prof.sampler)
    get_task(task)
    _check_options(experts, cls_expert, formulation)
    if "search" in strategy_class(strategy).needs:  # the shots' split and count, checked before the model loads
        prof.few_shot_config(task, seed, split=shot_split, **({"shots": shots} if shots else {}))
    loaded = common.load(model or prof.model, prof.seed_or_default(seed), prof.resolved_factor_dtype())
    req = op.adapt_request(prof, strategy, task, limit, experts, cls_expert, formulation, shots, shot_split, seed,
                         sampler, data_dir, loaded.weights_hash)
    plan = op.OP.plan(req, ident_of(loaded))  # bad references fail here, before any catalog write

    def gen_log(st) -> None:
        h = st.history[-1]
        console.print(f"CEM generation {st.generation:3d}  best acc {h['best'][0]:.3f} (ll {h['best'][1]:.3f})  "
                      f"mean acc {h['mean_accuracy']:.3f}")

    out = execute(op.OP, req, loaded, Catalog(), force=force, plan=plan, hooks=Hooks(on_generation=gen_log))
    if out.search:
        s = out.search
        console.print(f"few-shot mixture {s.expert.id}: α = {[round(a, 3) for a in s.alpha.reshape(-1).tolist()][:12]} "
                      f"over {', '.join(s.experts)} ({s.state.generation} generations"
                      + (", reused" if s.reused else f", {s.seconds:.0f}s") + ")")
    m = out.metrics
    state = "already in the catalog (use --force to redo)" if out.reused else "recorded"
    console.print(f"[bold]{strategy}[/] {task}: accuracy [bold]{out.accuracy:.4f}[/] "
                  f"({int(m.get('n_correct', 0))}/{out.n}); pass 1 {m.get('pass1_seconds', 0):.1f}s, "
                  f"pass 2 {m.get('pass2_seconds', 0):.1f}s; run {out.run_id} {state}")


@app.command()
@handle_errors
def ask(
    question: str = typer.Argument(..., help="the question"),
    strategy: str = typer.Option("prompt", help="one that decides per question: {question_strategies}"),
    profile: str = typer.Option("smol", help="profile whose settings are the defaults"),
    model: str | None = typer.Option(None, help="model (default: the profile's)"),
    experts: str | None = typer.Option(None, help="comma-separated expert ids (default: the stored ones)"),
    cls_expert: str | None = typer.Option(None, help="classification expert id (cls-expert)"),
    formulation: str | None = typer.Option(None, help="pass 1: generate or choice (default: the profile's)"),
    max_new_tokens: int = typer.Option(256, help="length of the answer"),
    seed: int | None = typer.Option(None, help="random seed"),
) -> None:
    """Answer one question the two-pass way: shows the category, the expert and both passes' times."""
    quiet_transformers()
    from t2core.profiles import get_profile
    from t2ops import adaptation as op

    op.check_ask_strategy(strategy)
    if not question.strip():
        from t2core.errors import ConfigError

        raise ConfigError("the question is empty; ask something, e.g. t2 ask \"What is 12 * 7?\".")
    prof = get_profile(profile)
    _check_options(experts, cls_expert, formulation)
    loaded = common.load(model or prof.model, prof.seed_or_default(seed), prof.resolved_factor_dtype())
    req = op.adapt_request(prof, strategy, "", None, experts, cls_expert, formulation, None, "train", seed, None, None,
                         loaded.weights_hash)
    a = op.ask(question, req, loaded, max_new_tokens)
    console.print(f"category [bold]{a.category}[/] -> {a.applied}  (pass 1 {a.pass1_seconds:.2f}s, "
                  f"pass 2 {a.pass2_seconds:.2f}s)")
    console.print(a.text, highlight=False, markup=False)
