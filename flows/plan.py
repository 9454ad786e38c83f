"""`t2 plan`: what a flow's stages need (memory on the device and the host, disk, time) before anything runs.

Why here: the plan walks the very stage bodies a run executes (flows/paper.py), with a `PlanningStages`
in place of `Stages`: each submitted stage is not planned against the catalog or run but asked for its
`footprint` (t2ops: each operation counts its own work, t2core/plan/work.py). So the plan lists the stages
the run would list, in its order, with no second copy of the flow (house style 2). Nothing loads weights:
the model's shapes come from its config (t2core/plan/shape.py), so the `paper` profile plans on a laptop.

How a run holds memory, which the totals follow: the stages of a local run execute one after another in
one process that keeps one model loaded (flows/runtime.py) and, from the first stage that uses them, that
model's SVD factors (t2core/svf/placement.py: resident once per load). So a stage's peak is what is
resident then, plus its own transient footprint, plus the allocator's slack. A sampler with its own
process (vLLM) holds its own copy of the model: on a GPU it takes its memory fraction of the same device
unless `--gpus 2` gives it the second one.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field, replace
from typing import Any

from t2core.errors import ConfigError
from t2core.plan import footprint as fp
from t2core.plan.devices import Devices
from t2core.plan.footprint import GB
from t2core.plan.shape import ModelShape, model_shape
from t2core.plan.work import PlanContext, Work
from t2ops.model import ModelIdent


@dataclass
class PlannedStage:
    label: str
    op: Any
    req: Any
    ident: ModelIdent
    work: Work


class _Placeholder:
    """The outcome of a stage that did not run: whatever a later stage reads of it is a placeholder id."""

    def __init__(self, stage: PlannedStage) -> None:
        req = stage.req
        method = getattr(getattr(req, "ntp", None), "method", None) or getattr(getattr(req, "rl", None), "method", "svf")
        self.expert_id = f"{method}:planned-{stage.label}"  # what a later stage reads: the product, then a placeholder
        adapters = getattr(req, "adapters", ())
        self.picked = adapters[0] if adapters else self.expert_id  # lora-pick: as if it chose the first


def config_ident(name: str, seed: int = 0) -> ModelIdent:
    """A model's identity for planning: its alias and size, no weights (no run id is computed)."""
    shape = model_shape(name, seed)
    return ModelIdent(name, seed, name, f"planned:{name}", shape.n_params, ())


@dataclass
class PlanningStages:
    """`flows.stages.Stages`'s interface for the stage bodies, collecting footprints instead of running."""

    contexts: dict[str, PlanContext]
    executes: bool = False  # nothing runs: no fault-injection point fires while a plan walks a body
    concurrent: bool = False
    listed: list[tuple[str, PlannedStage, bool]] = field(default_factory=list)
    blocked: list[tuple[str, str]] = field(default_factory=list)
    by_key: dict[tuple, PlannedStage] = field(default_factory=dict)

    @property
    def cat(self):
        raise ConfigError("a plan reads no catalog")  # a body that asks (the transfer's own experts) goes without

    def selected(self, label: str) -> bool:
        return True

    @contextlib.contextmanager
    def guard(self, label: str):
        yield

    def model(self, name: str, seed: int = 0, factor_dtype: str = "float32") -> ModelIdent:
        ident = config_ident(name, seed)
        first = next(iter(self.contexts.values()))
        self.contexts.setdefault(name, replace(first, shape=model_shape(name, seed)))
        return ident

    def submit(self, label: str, op: Any, ident: ModelIdent, req: Any) -> PlannedStage:
        key = (op.name, ident.alias, repr(req))
        if key in self.by_key:
            self.listed.append((label, self.by_key[key], False))
            return self.by_key[key]
        stage = self.by_key[key] = PlannedStage(label, op, req, ident, op.footprint(req, self.contexts[ident.alias]))
        self.listed.append((label, stage, True))
        return stage

    def outcome(self, stage: PlannedStage) -> Any:
        return _Placeholder(stage)


@dataclass(frozen=True)
class StageNeeds:
    """One row of the plan: a stage's peak on the device and the host, what it writes, its estimated time."""

    label: str
    device_bytes: int
    host_bytes: int
    sampler_bytes: int  # the sampler processes running (vLLM: started by this stage or an earlier one), else 0
    disk: int
    seconds: float
    parts: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class FlowPlan:
    profile: str
    devices: Devices
    stages: tuple[StageNeeds, ...]
    hint: str = ""  # what to change when it does not fit (fit_plan)

    @property
    def device_peak(self) -> int:
        return max((s.device_bytes for s in self.stages), default=0)

    @property
    def host_peak(self) -> int:
        return max((s.host_bytes + (0 if self.devices.gpu else s.sampler_bytes) for s in self.stages), default=0)

    @property
    def sampler_peak(self) -> int:
        return max((s.sampler_bytes for s in self.stages), default=0)

    def misfit(self) -> str | None:
        """Why the plan does not fit its devices (None: it fits)."""
        return self.devices.misfit(self.device_peak, self.host_peak, self.sampler_peak)

    def advice(self) -> str:
        return self.hint or "give it more memory (--memory-gb / T2_MEMORY_GB, --gpus, --gpu-gb)"

    def largest(self) -> StageNeeds:
        return max(self.stages, key=lambda s: s.device_bytes if self.devices.gpu else s.host_bytes)


def _resident(shape: ModelShape, ctx: PlanContext, factor_specs: set[str], gpu: bool, touched: bool = True
              ) -> fp.Footprint:
    """What the process holds for the model before a stage. On the host, a model read from its float32
    safetensors file is mapped, not copied: its pages count once a stage has computed with it (`touched`); a
    flow whose evaluations all run in a vLLM server never reads them. On a GPU the load copies them. (A hub
    model stored in bf16 is converted, so copied, at load: a process of remote stages only is undercounted.)"""
    parts = [("weights", fp.weights(shape))] if gpu or touched or not shape.weight_file else []
    parts += [(f"SVD factors ({spec})", fp.factors(shape, spec, ctx.factor_dtype)) for spec in sorted(factor_specs)]
    if gpu:
        parts.append(("CUDA context", fp.CUDA_CONTEXT))
    return fp.Footprint(tuple(parts))


#: a vLLM CPU server's own runtime beside its tensors (its engine, worker, activations and logits). Qwen2.5-Coder-
#: 0.5B's fp32 server (bench/plan_check.py, docs/performance.md): 7.05 GB serving the base model (1.98 of weights,
#: 2.15 of cache: 2.9 GB more), 11.9-12.6 GB serving a trainer's experts (its factors and W' too, and rollouts)
VLLM_RUNTIME = int(3.0 * GB)


def _sampler_bytes(shape: ModelShape, devices: Devices) -> int:
    """A vLLM server's own memory: its copy of the weights and of the SVD factors (it applies the experts'
    vectors itself), an expert's W' swapped in, and its KV cache space (CPU: `kv_cache_gib`); on a GPU, its
    fraction of the card."""
    from t2core.serving.vllm_env import ServerSettings

    s = ServerSettings()
    if devices.gpu:
        return int(s.gpu_memory_utilization * devices.gpu_bytes)
    return (fp.weights(shape) + fp.factors(shape, "mlp") + fp.swapped_weights(shape, "mlp").total
            + int(s.kv_cache_gib * 2**30) + VLLM_RUNTIME)


def walk(S: PlanningStages, profile, flow: str, seed: int, data_dir: str | None) -> None:
    """The stage bodies of `flow`, as its run calls them (flows/pipelines.py)."""
    from flows import paper

    ident = S.model(profile.model, seed)
    log = logging.getLogger("t2.plan")
    if flow == "full-paper":
        paper.full_paper(S, profile, ident, seed, data_dir, log)
    elif flow == "ablations":
        paper.ablation_stages(S, profile, ident, seed, data_dir)
    elif flow == "transfer":
        dst = profile.transfer.dst
        if not dst:
            raise ConfigError(f"profile {profile.name} names no transfer destination: plan `full-paper` or set one.")
        sources = {t: f"planned:train:{t}" for t in (profile.transfer.experts or [t.task for t in profile.trains])}
        paper.transfer_stages(S, profile, S.model(dst, seed), sources, seed, data_dir, log)
    else:
        raise ConfigError(f"flow {flow!r} has no plan; plan one of full-paper, ablations, transfer.")


def _walked(profile, gpu: bool, flow: str, seed: int | None, data_dir: str | None) -> PlanningStages:
    seed = profile.seed_or_default(seed)
    ctx = PlanContext(model_shape(profile.model, seed), data_dir, profile.resolved_factor_dtype(),
                      profile.grad_checkpointing, gpu)
    S = PlanningStages({profile.model: ctx})
    walk(S, profile, flow, seed, data_dir)
    return S


def stage_names(profile, flow: str, seed: int | None = None, data_dir: str | None = None) -> tuple[str, ...]:
    """The names a run of `flow` gives its stages, in its order: from the same walk of the stage bodies as the
    plan, so `--stages` patterns are checked against them before anything starts (flows/pipelines.py)."""
    S = _walked(profile, False, flow, seed, data_dir)
    return tuple(dict.fromkeys([label for label, _, _ in S.listed] + [label for label, _ in S.blocked]))


def plan_flow(profile, devices: Devices, flow: str = "full-paper", seed: int | None = None,
              data_dir: str | None = None, only: tuple[str, ...] = ()) -> FlowPlan:
    """Every stage of `flow` under `profile` (`only`: those these `--stages` patterns select, as a process
    that runs just them, the others read back from the catalog; a prerequisite a selected stage runs as its
    part, the SVD before a training, counts only through that stage), with its peak memory on `devices`. A vLLM server, once a stage has started it, runs until the
    flow's process ends (t2core/sampling/vllm.py keeps one per model and dtype), so it is counted beside
    every later stage on that model, whether the stage asks it or not."""
    from flows.stages import matches

    S = _walked(profile, devices.gpu, flow, seed, data_dir)
    rows: list[StageNeeds] = []
    resident: dict[str, set[str]] = {}
    served: set[str] = set()  # models whose sampler process is running
    touched: set[str] = set()  # models a stage has computed with in this process
    for label, stage, first in S.listed:
        if not first or not matches(label, only):
            continue
        ctx_m = S.contexts[stage.ident.alias]
        specs = resident.setdefault(stage.ident.alias, set())
        if stage.work.factors:
            specs.add(stage.work.factors)
        if stage.work.local:
            touched.add(stage.ident.alias)
        res = _resident(ctx_m.shape, ctx_m, specs, devices.gpu, stage.ident.alias in touched)
        mine = fp.with_slack(stage.work.footprint)
        device = res.total + mine.total
        host = fp.RUNTIME_HOST + (mine.host if devices.gpu else device)
        if stage.work.sampler_process:
            served.add(stage.ident.alias)
        sampler = sum(_sampler_bytes(S.contexts[m].shape, devices) for m in sorted(served))
        secs = devices.seconds(stage.work.footprint, fp.weights(ctx_m.shape))
        rows.append(StageNeeds(label, device if devices.gpu else 0, host, sampler, stage.work.footprint.disk, secs,
                               res.parts + mine.parts))
    return FlowPlan(profile.name, devices, tuple(rows))


#: the profile settings the plan may suggest turning, in order, each on top of the ones before: U and V stored
#: in bf16 (half their memory: a bf16 forward casts them to bf16 anyway), then gradient checkpointing
#: (the activations of one layer at a time, for a recomputed forward)
KNOBS = (("factor_dtype='bfloat16'", {"factor_dtype": "bfloat16"}), ("grad_checkpointing=True",
                                                                       {"grad_checkpointing": True}))


def fit_plan(profile, devices: Devices, flow: str = "full-paper", seed: int | None = None,
             data_dir: str | None = None, only: tuple[str, ...] = ()) -> FlowPlan:
    """The plan of the profile as it is (`only`: of the stages these `--stages` patterns select); where it does
    not fit, a hint naming what to change, found by planning again with the knobs the profile has not turned
    yet (bf16 factors only where the profile computes in bf16: with a float32 forward they would change its
    results)."""
    plan = plan_flow(profile, devices, flow, seed, data_dir, only)
    if plan.misfit() is None:
        return plan
    tried, hint = profile, ""
    for _, setting in KNOBS:
        if all(getattr(tried, k) == v for k, v in setting.items()):
            continue
        if "factor_dtype" in setting and profile.dtype != "bfloat16":
            continue
        tried = replace(tried, **setting)
        again = plan_flow(tried, devices, flow, seed, data_dir, only)
        turned = [n for n, st in KNOBS if all(getattr(tried, k) == v for k, v in st.items())
                  and not all(getattr(profile, k) == v for k, v in st.items())]
        if again.misfit() is None:
            hint = (f"set {' and '.join(turned)} in profile {profile.name} (then its peak is "
                    f"{(again.device_peak if devices.gpu else again.host_peak) / 1e9:.1f} GB)")
            break
    if not hint:
        big = plan.largest()
        hint = (f"its largest stage is {big.label}: a smaller micro_batch_size or batch_size for it, or "
                "more memory (--memory-gb / T2_MEMORY_GB, --gpus, --gpu-gb)")
    return replace(plan, hint=hint)
