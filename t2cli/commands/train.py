"""`t2 train` (an SVF expert or LoRA-PG by REINFORCE, paper §3.2) and `t2 baseline` (LoRA/IA3/DoRA/SVF-NTP by next-token prediction)."""

from __future__ import annotations

import typer

from t2cli import common
from t2cli.common import app, console, handle_errors, quiet_transformers


@app.command()
@handle_errors
def train(
    model: str | None = typer.Option(None, help="model alias, HF id or local directory (default: the profile's)"),
    task: str = typer.Option(..., help="training task: gsm8k, mbpp, arc_easy_cloze, arc_easy (or any registered task)"),
    profile: str = typer.Option("smol", help="profile whose training settings are the defaults"),
    steps: int | None = typer.Option(None, help="optimizer steps"),
    batch_size: int | None = typer.Option(None, help="prompts per step"),
    lr: float | None = typer.Option(None, help="learning rate (paper 2e-3)"),
    kl_coef: float | None = typer.Option(None, help="KL penalty λ (the paper chooses it on validation)"),
    kl_grid: str | None = typer.Option(None, help="comma-separated λ: one expert each, the best on validation kept "
                                                  "(paper A.1); default: the profile's grid unless --kl-coef"),
    temperature: float | None = typer.Option(None, help="rollout temperature (0 = greedy)"),
    micro_batch_size: int | None = typer.Option(None, help="prompts per differentiable forward (bounds memory; "
                                                           "same update, same expert id)"),
    targets: str | None = typer.Option(None, help="SVF targets: mlp, attn, both"),
    param: str | None = typer.Option(None, help="SVF parameterisation: direct (t2) or sigmoid with the Σs rescale (released code)"),
    method: str = typer.Option("svf", help="trained by REINFORCE: {pg_methods}; svf is the paper's"),
    sampler: str | None = typer.Option(None, help="rollout sampler: hf (in-process), proc (its own copy of the "
                                                  "model in another process) or vllm (a vLLM server), the last two "
                                                  "fed the SVF vectors of each step; default: the profile's"),
    dtype: str | None = typer.Option(None, help="auto (this machine's faster; `t2 doctor`), float32 or bfloat16; part "
                                                "of the run id, so a run resumes only at the dtype it started with "
                                                "(default: the profile's)"),
    data_dir: str | None = typer.Option(None, help="dataset directory"),
    seed: int | None = typer.Option(None, help="random seed (default: the profile's)"),
) -> None:
    """Train an SVF expert with REINFORCE (resumable); the expert and its learning curve go into the catalog."""
    quiet_transformers()
    from dataclasses import replace

    from catalog import Catalog
    from catalog.execute import execute
    from t2core.paths import resolve_data_dir
    from t2core.profiles import get_profile
    from t2ops import training as op
    from t2ops.operation import Hooks

    prof = get_profile(profile)
    if sampler is None:
        prof, note = prof.with_sampler_available()
        if note:
            console.print(note, highlight=False)
    given = {"steps": steps, "batch_size": batch_size, "lr": lr, "kl_coef": kl_coef, "temperature": temperature,
             "micro_batch_size": micro_batch_size, "dtype": dtype}
    svf = prof.svf(targets)
    if param:
        svf = replace(svf, param=param)
    cfg = prof.rl_config(task, seed, svf=svf, method=method, **{k: v for k, v in given.items() if v is not None})
    from t2core.training.kl_grid import parse_kl_grid

    grid = parse_kl_grid(kl_grid) if kl_grid else () if kl_coef is not None else prof.kl_grid(task)
    req = op.TrainRequest(cfg, sampler or prof.sampler, data_dir, kl_grid=grid)
    resolve_data_dir(data_dir)  # a missing data directory: one line before the model loads
    loaded = common.load(model or prof.model, cfg.seed, prof.resolved_factor_dtype(cfg.dtype))

    def log(p) -> None:
        v = f"  valid {p.valid_acc:.3f}" if p.valid_acc is not None else ""
        console.print(f"step {p.step:4d}  reward {p.mean_reward:+.3f}  train acc {p.train_acc:.3f}  kl {p.kl:.4f}"
                      f"  {p.wall_s:.1f}s{v}")

    out = execute(op.OP, req, loaded, Catalog(), hooks=Hooks(on_log=log))
    res = out.trained.result if out.trained else None
    if res is None:  # in the catalog, or stored by a run whose process died before recording it
        console.print(f"expert {out.expert_id} already trained: {out.path}")
        return
    if res.resumed_from:
        console.print(f"resumed from the checkpoint of step {res.resumed_from}")
    if grid:
        console.print(f"λ chosen on validation: {out.metrics['kl_chosen']:g} of {', '.join(f'{x:g}' for x in grid)}")
    console.print(f"expert [bold]{out.expert_id}[/]: validation {res.base_valid:.3f} (base) -> {res.best_valid:.3f} "
                  f"(best, step {res.best_step}); {out.trained.seconds:.0f}s; {out.path}")
    console.print(f"evaluate with `t2 eval --task {task} --expert {out.expert_id}`")


@app.command()
@handle_errors
def baseline(
    model: str = typer.Option("smollm2-135m", help="model alias, HF id or local directory"),
    task: str = typer.Option(..., help="training task"),
    method: str = typer.Option("lora", help="trained by next-token prediction: {ntp_methods}; lora is the "
                                            "paper's baseline (r16, alpha 32, dropout 0.05, q/v)"),
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
    quiet_transformers()
    from catalog import Catalog
    from catalog.execute import execute
    from t2core.paths import resolve_data_dir
    from t2core.training.ntp import NTPConfig
    from t2ops import baseline as op
    from t2ops.operation import Hooks

    cfg = NTPConfig(task=task, method=method, steps=steps, batch_size=batch_size, lr=lr, train_limit=train_limit,
                    dtype=dtype, seed=seed, shots=shots, shot_split=shot_split, svf_targets=svf_targets)
    resolve_data_dir(data_dir)  # a missing data directory: one line before the model loads
    loaded = common.load(model, seed)
    out = execute(op.OP, op.BaselineRequest(cfg, data_dir), loaded, Catalog(), hooks=Hooks(
        on_log=lambda s, loss: console.print(f"step {s:4d}  loss {loss:.4f}") if s % 5 == 0 else None))
    m = out.metrics
    how = ("already trained (stored adapter reused)" if out.reused or not m.get("steps") else
           f"loss {m['first_loss']:.3f} -> {m['final_loss']:.3f}, {out.result.seconds:.0f}s")
    what = "expert" if cfg.method == "svf" else "adapter"
    console.print(f"{method} {what} [bold]{out.expert_id}[/]: {int(m.get('n_trainable', 0))} trainable parameters, "
                  f"{how}; evaluate with `t2 eval --task {task} --expert {out.expert_id}`")
