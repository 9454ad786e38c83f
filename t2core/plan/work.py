"""The footprint of each kind of work t2 does, from the typed config of the operation that does it.

Each function takes the config an operation runs with (RLConfig, NTPConfig, EvalConfig, FewShotConfig:
the settings resolved once, house style 3) and a `PlanContext`, and returns the stage's transient
`Footprint` (what it adds on top of the resident model) and the SVD target spec it needs resident (None:
none). The operations (t2ops) call these from their `footprint` method; `flows/plan.py` adds them up per
process. Lengths come from the data (t2core/plan/lengths.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from t2core.plan import footprint as fp
from t2core.plan.lengths import SliceLengths, slice_lengths
from t2core.plan.shape import ModelShape


@dataclass(frozen=True)
class PlanContext:
    """What a footprint is computed against: the model's shapes, where the data is, and the knobs the plan
    may turn (the storage dtype of U and V; gradient checkpointing of the differentiable forwards)."""

    shape: ModelShape
    data_dir: str | None = None
    factor_dtype: str = "float32"
    checkpointing: bool = False
    gpu: bool = False  # the model on a GPU (an expert's W' is then swapped in place, its originals on the host)


@dataclass(frozen=True)
class Work:
    """A stage's transient footprint and the SVD factors it keeps resident (a target spec, or None)."""

    footprint: fp.Footprint
    factors: str | None = None
    sampler_process: bool = False  # its generations run in the sampler's own process (vLLM)
    local: bool = True  # it computes with the model in the flow's process (not only through the sampler)


def _lengths(ctx: PlanContext, task: str, split: str, limit: int | None) -> SliceLengths:
    return slice_lengths(task, split, limit, ctx.data_dir)


def _gen(ctx: PlanContext, rows: int, prompt: int, new: int, dtype: str) -> fp.Footprint:
    return fp.generation(ctx.shape, rows, prompt, new, dtype)


def _choice_forward(ctx: PlanContext, rows: int, ln: SliceLengths, dtype: str, grad: bool,
                    spec: str | None = None, kl: bool = False, mode: str = "factored") -> fp.Footprint:
    """Scoring every candidate of `rows` items (`candidate_logprobs_shared`): each prompt once, its KV cache
    repeated per candidate, the candidates' tokens scored; with `grad`, all of it kept for the backward."""
    s = ctx.shape
    # a training batch is drawn at random (a long prompt of it: the 95th percentile); an evaluation meets its
    # slice's longest prompt in some batch. The prompts' cache, then one copy of it per candidate.
    prompt, cand_tokens = (ln.prompt_p95 if grad else ln.prompt_max), max(ln.candidate_tokens, 1)
    cache = fp.kv_cache(s, rows * (max(ln.candidates, 1) + 1), prompt, dtype)
    if grad:
        # no checkpointing: the candidates continue from the prompts' KV cache, which checkpointing turns off
        f = fp.grad_forward(s, rows, prompt + cand_tokens, cand_tokens, dtype, spec, kl=kl, mode=mode)
        return fp.Footprint(f.parts + (("kv cache (per candidate)", cache),), flops=f.flops)
    parts = (("kv cache (per candidate)", cache),
             ("activations", fp.prefill_transient(s, rows, prompt + cand_tokens, dtype)),
             ("logits", fp.logits(s, rows * cand_tokens, dtype, grad=False)))
    return fp.Footprint(parts, flops=fp.forward_flops(s, rows * (prompt + cand_tokens), prompt + cand_tokens))


def evaluation(cfg, ctx: PlanContext, expert: bool = False, remote: bool = False, passes: int = 1) -> Work:
    """An evaluation (`EvalConfig`): batches of its slice generated (or its candidates scored); with an
    expert, W' written into the model (the targeted weights exist twice); `remote`: a sampler process
    generates or scores the candidates (vLLM), applying the expert to its own copy of the model, and this
    process only grades; `passes`: whole evaluations of the slice (two-pass: 2)."""
    from t2core.tasks import get_task

    task = get_task(cfg.task)
    g = cfg.generation
    dtype = g.dtype
    ln = _lengths(ctx, cfg.task, cfg.split, cfg.limit)
    batches = math.ceil(ln.items / g.batch_size)
    if task.output_type == "choice":
        f = _choice_forward(ctx, g.batch_size, ln, dtype, grad=False)
        f = replace(f, flops=f.flops * batches * passes)
    else:
        new = g.max_new_tokens or task.max_new_tokens
        one = _gen(ctx, g.batch_size, ln.prompt_max, new, dtype)
        f = fp.Footprint(one.parts, flops=one.flops * batches * passes, decode_steps=new * batches * passes)
    if remote:  # the sampler's process generates, or scores the candidates (VLLMSampler.choose): the same work
        f = replace(f, parts=())  # on the same devices, its memory counted as the sampler's (flows/plan.py)
    here = expert and not remote  # a remote sampler takes the expert's vectors and applies them to its own copy
    if here:
        f = f.plus(fp.swapped_weights(ctx.shape, "mlp", ctx.gpu))
    return Work(f, "mlp" if here else None, sampler_process=remote, local=not remote)


#: what pass 1's classification adds to a question (the released prompt's instructions and categories)
CLASSIFY_TOKENS = 200
N_CATEGORIES = 4  # the dispatch task's answers: code, math, reasoning, other


def two_pass(cfg, ctx: PlanContext, pass1: str | None, pass1_new: int, remote: bool = False) -> Work:
    """Two-pass adaptation (paper §3.3) of an evaluation slice: pass 1 classifies every question (`pass1`:
    "choice" scores the categories as candidates, each continuing from the question's KV cache; "generate"
    writes an answer of up to `pass1_new` tokens; None: no pass 1, the few-shot mixture), then pass 2
    answers with the chosen experts. The stage's peak is the larger pass."""
    g = cfg.generation
    ln = _lengths(ctx, cfg.task, cfg.split, cfg.limit)
    asked = replace(ln, prompt_max=ln.prompt_max + CLASSIFY_TOKENS, prompt_p95=ln.prompt_max + CLASSIFY_TOKENS,
                     candidates=N_CATEGORIES, candidate_tokens=N_CATEGORIES * 6)
    pass2 = evaluation(cfg, ctx, expert=True, remote=remote)
    if pass1 is None:
        return pass2
    if pass1 == "choice":
        first = _choice_forward(ctx, g.batch_size, asked, g.dtype, grad=False)
    else:
        first = _gen(ctx, g.batch_size, asked.prompt_max, pass1_new, g.dtype)
    if remote:  # pass 1 is asked of the sampler too (t2core/adapt/prompt.py)
        first = replace(first, parts=())
    f = pass2.footprint
    top = max((first, f), key=lambda x: x.total)
    batches = math.ceil(ln.items / g.batch_size)
    return Work(fp.Footprint(top.parts, f.disk, f.flops + first.flops * batches, f.decode_steps
                             + (0 if pass1 == "choice" else pass1_new * batches), host=top.host),
                pass2.factors, pass2.sampler_process, pass2.local)


def rl_training(cfg, ctx: PlanContext, remote: bool = False, kl_grid: tuple[float, ...] = ()) -> Work:
    """REINFORCE (`RLConfig`, paper §3.2): rollouts (generated with W' swapped in, or drawn among a choice
    task's candidates), then one differentiable forward per micro-batch; validation every `valid_every`
    steps; one run per λ of the grid."""
    from t2core.tasks import get_task

    task = get_task(cfg.task)
    s, dtype = ctx.shape, cfg.dtype
    spec = cfg.svf.targets if cfg.method == "svf" else None
    mb = min(cfg.micro_batch_size or cfg.batch_size, cfg.batch_size)
    kl = cfg.kl_coef > 0 or any(k > 0 for k in kl_grid)
    train = _lengths(ctx, cfg.task, cfg.train_split, cfg.train_limit)
    runs = max(1, len(kl_grid))
    if task.output_type == "choice":
        grad = _choice_forward(ctx, mb, train, dtype, grad=True, spec=spec, kl=kl, mode=cfg.svf.mode)
        steps = [grad]
        flops = grad.flops * math.ceil(cfg.batch_size / mb) * (2 if mb < cfg.batch_size else 1)
        decode = 0
    else:
        new = cfg.max_new_tokens or task.max_new_tokens
        length = train.prompt_p95 + new
        grad = fp.grad_forward(s, mb, length, new, dtype, spec, kl=kl, checkpointing=ctx.checkpointing,
                               mode=cfg.svf.mode)
        rollout = _gen(ctx, cfg.gen_batch_size, train.prompt_p95, new, dtype)
        if remote:  # generated in the sampler's process (its memory is the sampler's)
            rollout = replace(rollout, parts=())
        elif spec:
            rollout = rollout.plus(fp.swapped_weights(s, spec, ctx.gpu))
        steps = [rollout, grad]
        gen_batches = math.ceil(cfg.batch_size / cfg.gen_batch_size)
        flops = grad.flops * math.ceil(cfg.batch_size / mb) + rollout.flops * gen_batches
        decode = new * gen_batches
    peak = max(steps, key=lambda f: f.total)
    opt = fp.Footprint((("trained parameters, gradients, Adam's moments", 16 * s.ranks(spec or "attn") // (1 if spec else 8)),))
    valid = evaluation(_valid_eval(cfg), ctx, expert=spec is not None, remote=remote)
    per_run_valid = (cfg.steps // cfg.valid_every + 2) * valid.footprint.flops  # base, every k steps, the last
    top = max((peak.plus(opt), valid.footprint.plus(opt)), key=lambda f: f.total)
    total = fp.Footprint(top.parts, host=top.host, disk=16 * s.ranks(spec or "attn") * 2,
                         flops=runs * (cfg.steps * flops + per_run_valid),
                         decode_steps=runs * (cfg.steps * decode + (cfg.steps // cfg.valid_every + 2)
                                              * valid.footprint.decode_steps))
    return Work(total, spec, sampler_process=remote)  # a choice task's candidates are drawn here, validated there


def _valid_eval(cfg):
    """The EvalConfig a training run validates with (ReinforceTrainer.validate)."""
    from dataclasses import replace

    from t2core.evaluate import EvalConfig

    return EvalConfig(cfg.task, cfg.valid_split, cfg.valid_limit, replace(cfg.rollout_generation(), temperature=0.0))


def ntp_training(cfg, ctx: PlanContext) -> Work:
    """Next-token prediction on reference solutions (`NTPConfig`: LoRA, IA3, DoRA, SVF-NTP; paper A.2):
    every token of a `max_len` row scored, per micro-batch."""
    s, dtype = ctx.shape, cfg.dtype
    mb = min(cfg.micro_batch_size or cfg.batch_size, cfg.batch_size)
    spec = cfg.svf_targets if cfg.method == "svf" else None
    ln = _lengths(ctx, cfg.task, cfg.split, cfg.train_limit)
    length = min(cfg.max_len, ln.prompt_p95 + ln.reference_p95)  # a batch is padded to its longest row, capped
    grad = fp.grad_forward(s, mb, length, length, dtype, spec, checkpointing=ctx.checkpointing)
    adapter = 0 if spec else 2 * cfg.rank * s.hidden * 2 * s.layers  # LoRA A and B of q and v
    opt = fp.Footprint((("adapter, its gradient and Adam's moments", 16 * (s.ranks(spec) if spec else adapter)),))
    f = grad.plus(opt)
    return Work(fp.Footprint(f.parts, disk=4 * (s.ranks(spec) if spec else adapter),
                             flops=cfg.steps * grad.flops * math.ceil(cfg.batch_size / mb)), spec)


def few_shot(cfg, ctx: PlanContext, n_experts: int, remote: bool = False) -> Work:
    """CEM over α (paper §3.3, A.4): each generation scores `population` mixtures on the shots, rows of
    `batch_size` at once with a per-row expert (factored: an r-wide intermediate per targeted matrix)."""
    from t2core.evaluate import EvalConfig
    from t2core.sampling.base import GenerationConfig

    rows = cfg.batch_size
    gen = GenerationConfig(max_new_tokens=cfg.max_new_tokens, batch_size=rows, dtype=cfg.dtype)
    ev = evaluation(EvalConfig(cfg.task, cfg.split, cfg.shots, gen), ctx, remote=remote,
                    passes=cfg.cem.population * cfg.cem.generations)
    s, dtype = ctx.shape, cfg.dtype
    ln = _lengths(ctx, cfg.task, cfg.split, cfg.shots)
    # remote: the sampler serves the population grouped by mixture, each as one expert (t2core/sampling/vllm.py)
    factored = 0 if remote else (rows * (ln.prompt_max + (cfg.max_new_tokens or 0)) * s.ranks("mlp")
                                 * fp.compute_bytes(dtype) // s.layers)
    bank = n_experts * s.ranks("mlp") * 4
    f = ev.footprint
    f = replace(f, parts=f.parts + (("per-row mixture (bank, factored)", factored + bank),),
                flops=f.flops * 1.4)  # the factored MLP costs ~1.4x its FLOPs (t2core/svf/bank.py)
    return Work(f, None if remote else "mlp", ev.sampler_process, ev.local)
