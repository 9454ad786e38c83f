"""What a profile holds (its settings types, validated when built) and the profile registry.

The profiles themselves are data, one module each (`tiny.py`, `smol.py`, `paper.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from t2core.errors import ConfigError
from t2core.methods import Method, method_of
from t2core.models.targets import check_target_spec
from t2core.precision import AUTO
from t2core.profiles.slices import BaselineSlice, EvalSlice, TrainSlice, _check_keys  # noqa: F401 - re-exported
from t2core.registry import Registry
from t2core.settings import check_requested_dtype

if TYPE_CHECKING:
    from t2core.training.config import RLConfig

#: The paper's benchmarks: three training tasks, then the three unseen ones (paper §4).
PAPER_TASKS = ("gsm8k", "mbpp", "arc_easy", "math", "humaneval", "arc_challenge")
TRAIN_TASKS = ("gsm8k", "mbpp", "arc_easy")  # one expert per training task (paper §4.1)
PAPER_STRATEGIES = ("prompt", "cls-expert", "few-shot")  # the paper's three adaptation strategies (§3.3)


@dataclass(frozen=True)
class AdaptSettings:
    """Self-adaptation under a profile (paper §3.3): the experts dispatched and mixed, the unseen task
    slices evaluated two-pass, the classification expert's training and the few-shot search."""

    experts: tuple[str, ...] = field(default=(), metadata={"help": "training tasks whose experts adapt (one per "
                                                                     "category)"})
    strategies: tuple[str, ...] = field(default=PAPER_STRATEGIES, metadata={
        "help": "the registered strategies the full-paper flow runs on each unseen slice (paper: its three)"})
    unseen: tuple[EvalSlice, ...] = field(default=(), metadata={"help": "slices evaluated with each strategy"})
    formulation: str = field(default="generate", metadata={"help": "pass 1 of prompt (and of cls-expert without "
                                                                    "cls_formulation): generate or choice"})
    cls_formulation: str | None = field(default=None, metadata={
        "help": "pass 1 of cls-expert: choice (the formulation the dispatch task trains z^c in) or generate; "
                "None: `formulation`"})
    pass1_prompt: str = field(default="t2", metadata={
        "help": "the prompt strategy's classification prompt: t2 or released (t2core/adapt/pass1.py)"})
    pass1_strip_format: bool = field(default=False, metadata={
        "help": "the prompt strategy sees each question without its task's format instructions (released code)"})
    pass1_max_new_tokens: int = field(default=32, metadata={
        "help": "cap of pass 1's generated answer: it must reach its box (bench/pass1_cap.py)"})
    cls: tuple[tuple[str, object], ...] = field(default=(), metadata={"help": "RLConfig overrides of the "
                                                                              "classification expert"})
    shots: int = field(default=10, metadata={"help": "few-shot prompts per unseen task (train/valid split)"})
    light_shots: int | None = field(default=None, metadata={
        "help": "shots of a second, light few-shot search per searched task (Table 10); None: no light search"})
    cem: tuple[tuple[str, object], ...] = field(default=(), metadata={"help": "CEMConfig overrides"})
    light_cem: tuple[tuple[str, object], ...] = field(default=(), metadata={
        "help": "CEMConfig overrides of the light search, on top of `cem` (paper Table 10's CEM-light: 10 "
                "generations)"})
    tie_break: str = field(default="none", metadata={
        "help": "CEM on generated tasks: none, or loglik (paper §3.3: ties in accuracy broken by the mean token "
                "log-likelihood of each candidate's correct answers)"})
    few_shot_tasks: tuple[str, ...] | None = field(default=None, metadata={
        "help": "unseen tasks that get a few-shot search (None: every one with a train or valid split)"})
    loras: str = field(default="all", metadata={
        "help": "LoRAs evaluated on the unseen slices: all (Table 2's best-on-test row needs every one) or "
                "category (the LoRA of the training task with the unseen task's category: chosen without test data)"})

    def __post_init__(self) -> None:
        from t2core.adapt import check_strategy
        from t2core.adapt.cem import CEMConfig
        from t2core.adapt.prompt import FORMULATIONS
        from t2core.training.config import RLConfig

        for name in self.strategies:
            check_strategy(name)  # one line naming the registered ones
        if len(set(self.strategies)) != len(self.strategies):
            raise ConfigError(f"adapt strategies {list(self.strategies)} name one strategy twice.")
        _check_keys("adapt cls-expert", self.cls, RLConfig)
        from t2core.adapt.fewshot import TIE_BREAKS
        from t2core.adapt.pass1 import check_prompt

        _check_keys("adapt cem", self.cem, CEMConfig)
        _check_keys("adapt light_cem", self.light_cem, CEMConfig)
        for name in ("formulation", "cls_formulation"):
            value = getattr(self, name)
            if value not in FORMULATIONS and not (name == "cls_formulation" and value is None):
                raise ConfigError(f"adapt {name} {value!r} must be one of {', '.join(FORMULATIONS)}.")
        check_prompt(self.pass1_prompt)
        if self.pass1_max_new_tokens < 1:
            raise ConfigError(f"adapt pass1_max_new_tokens={self.pass1_max_new_tokens} must be >= 1.")
        if self.tie_break not in TIE_BREAKS:
            raise ConfigError(f"adapt tie_break {self.tie_break!r} must be one of {', '.join(TIE_BREAKS)}.")
        if self.loras not in ("all", "category"):
            raise ConfigError(f"adapt loras={self.loras!r} must be 'all' or 'category'.")
        if self.light_shots is not None and not 1 <= self.light_shots < self.shots:
            raise ConfigError(f"adapt light_shots={self.light_shots} must be between 1 and shots-1 ({self.shots - 1}): "
                              "the light search uses fewer prompts than the full one.")
        unknown = set(self.few_shot_tasks or ()) - {sl.task for sl in self.unseen}
        if unknown:
            raise ConfigError(f"adapt few_shot_tasks {sorted(unknown)} are not among the unseen slices.")

    def searches(self, task: str) -> bool:
        """Whether `task` gets a few-shot search (it must also have a train or valid split)."""
        from t2core.tasks import get_task

        has_shots = any(s in get_task(task).splits for s in ("train", "valid"))
        return has_shots and (self.few_shot_tasks is None or task in self.few_shot_tasks)


@dataclass(frozen=True)
class TransferSettings:
    """Cross-model transfer under a profile (paper §4.4, Tables 5 and 9): the profile's experts move to
    another model and are evaluated there beside its base, with the controls."""

    dst: str | None = field(default=None, metadata={
        "help": "destination model; full-paper runs the transfer stages only when it is set (the transfer "
                "flow also takes it as a parameter)"})
    experts: tuple[str, ...] | None = field(default=None, metadata={
        "help": "training tasks whose experts move (None: every trained task)"})
    controls: tuple[str, ...] = field(default=("ordered", "shuffled", "random"), metadata={
        "help": "ordered (the transfer), shuffled (the paper's control), random (magnitude-matched)"})
    seed: int = field(default=0, metadata={"help": "seed of the shuffle and random controls"})
    evals: tuple[EvalSlice, ...] = field(default=(), metadata={
        "help": "Table 9: slices on the destination; each transferred expert is evaluated on its own task's"})
    unseen: tuple[EvalSlice, ...] = field(default=(), metadata={
        "help": "Table 5: unseen-task slices; the transferred expert of the task's category is evaluated"})
    few_shot: bool = field(default=False, metadata={
        "help": "cross-model few-shot: CEM over the transferred and the destination's own experts on each "
                "unseen slice with a train or valid split"})

    def __post_init__(self) -> None:
        from t2core.transfer import CONTROLS

        for c in self.controls:
            CONTROLS.get(c)


ABLATION_LORA_MODULES = {"attn": ("q_proj", "v_proj"),  # the paper's LoRA (q, v)
                         "mlp": ("gate_proj", "up_proj", "down_proj"),
                         "both": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")}


@dataclass(frozen=True)
class AblationVariant:
    """One row of Table 4: a parameterisation (svf, lora), an objective (pg: the REINFORCE loop of the
    experts; ntp: next-token prediction on reference solutions) and the matrices it adapts."""

    method: str = field(metadata={"help": "svf or lora"})
    objective: str = field(metadata={"help": "pg (REINFORCE) or ntp (next-token prediction)"})
    targets: str = field(default="mlp", metadata={"help": "mlp, attn or both"})
    overrides: tuple[tuple[str, object], ...] = field(default=(), metadata={
        "help": "RLConfig (pg) or NTPConfig (ntp) overrides, on top of the profile's settings for the task"})

    def __post_init__(self) -> None:
        from t2core.models.targets import check_target_spec
        from t2core.training.config import RLConfig
        from t2core.training.ntp import NTPConfig

        check_target_spec(self.targets)
        if self.method not in ("svf", "lora") or self.objective not in ("pg", "ntp"):
            raise ConfigError(f"ablation {self.method}-{self.objective}: method must be svf or lora and objective "
                              "pg or ntp.")
        method_of(self.objective, self.method)
        if (self.method, self.objective, self.targets) in {("lora", "pg", "mlp"), ("lora", "pg", "both")}:
            raise ConfigError("ablation lora-pg: LoRA-PG adapts q and v (the paper's LoRA); use targets='attn'.")
        if any(k == "steps" for k, _ in self.overrides):
            raise ConfigError("ablation overrides: the step budget is the ablation's `steps`, the same for every "
                              "variant; remove 'steps'.")
        _check_keys(f"ablation {self.label}", self.overrides, RLConfig if self.objective == "pg" else NTPConfig)

    @property
    def entry(self) -> Method:
        """How this variant is trained and applied (t2core/methods)."""
        return method_of(self.objective, self.method)

    @property
    def label(self) -> str:
        """E.g. "SVF-PG mlp", "LoRA-NTP both": how Table 4 names the row."""
        return f"{'SVF' if self.method == 'svf' else 'LoRA'}-{self.objective.upper()} {self.targets}"


@dataclass(frozen=True)
class AblationSettings:
    """Table 4 under a profile: variants trained on one task with one step budget, evaluated on its test
    slice and on unseen slices (zero-shot)."""

    task: str | None = field(default=None, metadata={"help": "the training task of every variant"})
    steps: int = field(default=30, metadata={"help": "the optimizer-step budget of every variant"})
    evals: tuple[EvalSlice, ...] = field(default=(), metadata={
        "help": "slices every variant and the base model are evaluated on: the task's test slice and unseen ones"})
    variants: tuple[AblationVariant, ...] = field(default=(), metadata={"help": "Table 4's rows"})
    in_full_paper: bool = field(default=False, metadata={
        "help": "full-paper runs the ablations too (otherwise only the `ablations` flow does)"})

    def __post_init__(self) -> None:
        if self.variants and not (self.task and self.evals):
            raise ConfigError("ablations: variants need a task and evaluation slices.")
        if self.steps < 1:
            raise ConfigError(f"ablations: steps={self.steps} must be >= 1.")
        labels = [v.label for v in self.variants]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"ablations: variants repeat ({', '.join(sorted(labels))}); one per row of Table 4.")


@dataclass(frozen=True)
class Profile:
    name: str
    model: str = field(metadata={"help": "model alias, HF id or local directory"})
    targets: str = field(default="mlp", metadata={"help": "SVF targets: mlp (paper), attn or both"})
    svf_param: str = field(default="direct", metadata={
        "help": "z parameterisation of its experts: direct (t2: z init 1) or sigmoid (the released code, with the "
                "Σs rescale); the paper's text gives neither (t2core/svf/policy.py)"})
    evals: tuple[EvalSlice, ...] = field(default=(), metadata={"help": "base-model evaluation slices"})
    batch_size: int = field(default=8, metadata={"help": "generation batch size"})
    dtype: str = field(default="auto", metadata={"help": "auto (this machine's faster: t2core/precision.py), float32 "
                                                         "or bfloat16 (autocast)"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "cap on new tokens (None: task default)"})
    trains: tuple[TrainSlice, ...] = field(default=(), metadata={"help": "SVF experts to train (paper §4.1)"})
    baselines: tuple[BaselineSlice, ...] = field(default=(), metadata={"help": "PEFT baselines (Table 1, 7)"})
    sampler: str = field(default="hf", metadata={"help": "sampler of evaluations and rollouts: hf (in-process), "
                                                          "proc or vllm (their own model copy, fed SVF vectors)"})
    adapt: AdaptSettings = field(default_factory=AdaptSettings, metadata={"help": "self-adaptation (paper §3.3)"})
    transfer: TransferSettings = field(default_factory=TransferSettings, metadata={
        "help": "cross-model transfer (paper §4.4)"})
    ablations: AblationSettings = field(default_factory=AblationSettings, metadata={
        "help": "Table 4's variants (the `ablations` flow)"})
    factor_dtype: str = field(default="float32", metadata={
        "help": "storage dtype of the resident U and V: float32, bfloat16 (half their memory; only with dtype "
                "bfloat16, whose forward casts them to bf16 anyway: `t2 plan` says when it is needed) or auto "
                "(bfloat16 where dtype resolves to it, else float32)"})
    grad_checkpointing: bool = field(default=False, metadata={
        "help": "recompute each layer's activations in the backward of REINFORCE and NTP (one layer's kept at a "
                "time, for ~1/3 more compute; the same gradient up to rounding): `t2 plan` says when it is needed"})
    runner: str = field(default="local", metadata={"help": "where a flow's stages run: local (one after another "
                                                          "in the flow's process) or dask (t2 run --runner)"})
    seed: int = 0
    description: str = ""

    # Settings are resolved here, once, into the typed config of each operation; nothing downstream
    # re-derives them (the flows and `t2 train` call these).
    def train_overrides(self, task: str) -> dict[str, object]:
        """RLConfig settings this profile gives `task`: its dtype, then the task's slice overrides (for the
        classification expert's `dispatch` task, the profile's `adapt.cls`: `t2 train --task dispatch` trains
        the z^c the flow would)."""
        own = dict(self.adapt.cls) if task == "dispatch" else next(
            (t.rl_kwargs() for t in self.trains if t.task == task), {})
        return {"dtype": self.dtype, **self._memory_knobs(), **own}

    def _memory_knobs(self) -> dict[str, object]:
        """The profile's memory settings every training config takes (none when off: ids and configs as before)."""
        return {"grad_checkpointing": True} if self.grad_checkpointing else {}

    def svf(self, targets: str | None = None):
        """The SVFConfig of this profile's experts: its targets (or `targets`) and its z parameterisation."""
        from t2core.svf.policy import SVFConfig

        return SVFConfig(targets=targets or self.targets, param=self.svf_param)

    def kl_grid(self, task: str) -> tuple[float, ...]:
        """The λ grid this profile chooses `task`'s KL coefficient from on validation (): none, kl_coef."""
        return next((t.kl_grid for t in self.trains if t.task == task), ())

    def with_sampler_available(self) -> tuple[Profile, str | None]:
        """This profile, with hf in place of vllm when the vLLM environment is missing, and the one line that
        says so (None when nothing changed). A sampler asked for explicitly is never replaced."""
        if self.sampler != "vllm":
            return self, None
        from dataclasses import replace

        from t2core.serving.vllm_env import ServerSettings

        try:
            ServerSettings().interpreter()
        except ConfigError as e:
            return replace(self, sampler="hf"), f"profile {self.name}: {e} Using the hf sampler instead."
        return self, None

    def resolved_factor_dtype(self, dtype: str | None = None) -> str:
        """`factor_dtype` for a run computing in `dtype` (a command's own, else the profile's), "auto" resolved."""
        from t2core.precision import resolve_dtype
        from t2core.svf.placement import factor_dtype_setting

        auto = self.factor_dtype == AUTO
        return factor_dtype_setting(self.factor_dtype, resolve_dtype(dtype or self.dtype) if auto else None)

    def seed_or_default(self, seed: int | None) -> int:
        """The seed of a run of this profile: the one given, else the profile's."""
        return self.seed if seed is None else seed

    def rl_config(self, task: str, seed: int | None = None, **given) -> RLConfig:
        """The REINFORCE config of `task` under this profile; `given` (e.g. CLI options) wins."""
        from t2core.training.config import RLConfig

        kw = {**self.train_overrides(task), **given}
        svf = kw.pop("svf", None) or self.svf()
        return RLConfig(task=task, seed=self.seed_or_default(seed), svf=svf, **kw)

    def ntp_config(self, baseline: BaselineSlice, seed: int | None = None, **given):
        """The NTPConfig of a next-token-prediction baseline (lora / ia3 / dora; svf in `given`: SVF-NTP)."""
        from t2core.training.ntp import NTPConfig

        kw = {"method": baseline.method, "dtype": self.dtype, **self._memory_knobs(), **baseline.kwargs(), **given}
        return NTPConfig(task=baseline.task, seed=self.seed_or_default(seed), **kw)

    def ablation_config(self, v: AblationVariant, seed: int | None = None):
        """The training config of one Table 4 variant: an RLConfig (pg) or an NTPConfig (ntp), with the
        ablation's step budget. PG variants start from the profile's settings for the task (so SVF-PG on
        the profile's targets is the profile's own expert, reused); NTP ones from its LoRA baseline's."""

        ab = self.ablations
        kw = {**dict(v.overrides), "steps": ab.steps}
        if v.objective == "pg":
            if v.method == "lora":
                return self.rl_config(ab.task, seed, method="lora", **kw)
            return self.rl_config(ab.task, seed, svf=self.svf(v.targets), **kw)
        base = next((b.overrides for b in self.baselines if b.task == ab.task and b.method == "lora"), ())
        kw = {"dtype": self.dtype, **self._memory_knobs(), **dict(base), **kw}
        if v.method == "svf":
            kw.update(method="svf", svf_targets=v.targets)
        else:
            kw["target_modules"] = ABLATION_LORA_MODULES[v.targets]
        return self.ntp_config(BaselineSlice(ab.task, "lora"), seed, **kw)

    def eval_config(self, sl: EvalSlice, seed: int | None = None):
        """The EvalConfig of one slice: the profile's batch size and dtype; max_new_tokens the profile's
        cap where it is below the task's default (None: the task's default, resolved by plan_eval)."""
        from t2core.evaluate import EvalConfig
        from t2core.sampling.base import GenerationConfig
        from t2core.tasks import get_task

        cap = self.max_new_tokens
        mnt = min(cap, get_task(sl.task).max_new_tokens) if cap is not None else None
        gen = GenerationConfig(batch_size=self.batch_size, dtype=self.dtype, seed=self.seed_or_default(seed),
                               max_new_tokens=mnt)
        return EvalConfig(task=sl.task, split=sl.split, limit=sl.limit, generation=gen)

    def cls_config(self, seed: int | None = None) -> RLConfig:
        """The REINFORCE config of the classification expert (the `dispatch` task)."""
        return self.rl_config("dispatch", seed)

    def few_shot_config(self, task: str, seed: int | None = None, **given):
        """The few-shot search of `task`: the profile's shots, CEM settings, batch size and dtype."""
        from t2core.adapt.cem import CEMConfig
        from t2core.adapt.fewshot import FewShotConfig
        from t2core.tasks import get_task

        cem_kw = {**dict(self.adapt.cem), **given.pop("cem", {})}
        cap = self.max_new_tokens
        mnt = min(cap, get_task(task).max_new_tokens) if cap is not None else None
        kw = dict(shots=self.adapt.shots, batch_size=self.batch_size, dtype=self.dtype, max_new_tokens=mnt,
                  tie_break=self.adapt.tie_break)
        return FewShotConfig(task=task, cem=CEMConfig(seed=self.seed_or_default(seed), **cem_kw), **{**kw, **given})

    def light_few_shot_config(self, task: str, seed: int | None = None, **given):
        """The light search of `task` (Table 10): the profile's light shots, its CEM settings with `light_cem`."""
        cem = {**dict(self.adapt.cem), **dict(self.adapt.light_cem), **given.pop("cem", {})}
        return self.few_shot_config(task, seed, **{"shots": self.adapt.light_shots, "cem": cem, **given})

    def pass1_kwargs(self, formulation: str | None = None) -> dict[str, object]:
        """The AdaptRequest settings of pass 1 under this profile; `formulation` given (a CLI option) sets both
        strategies' formulation."""
        ad = self.adapt
        return {"formulation": formulation or ad.formulation,
                "cls_formulation": formulation or ad.cls_formulation or "", "prompt": ad.pass1_prompt,
                "strip_format": ad.pass1_strip_format, "pass1_max_new_tokens": ad.pass1_max_new_tokens}

    def __post_init__(self) -> None:
        check_target_spec(self.targets)
        self.svf()  # an unknown svf_param fails here, in one line
        untrained = [t for t in (*self.adapt.experts, *(self.transfer.experts or ()))
                     if t not in {tr.task for tr in self.trains}]
        if untrained:
            raise ConfigError(f"profile {self.name}: adapt/transfer experts {untrained} are not among its trained tasks.")
        from t2core.sampling.base import check_exact_sampler

        check_exact_sampler(self.sampler, f"profile {self.name} (it trains experts with its sampler)")
        if self.runner not in ("local", "dask"):
            raise ConfigError(f"profile {self.name}: runner={self.runner!r} must be local or dask.")
        if self.batch_size < 1:
            raise ConfigError(f"profile {self.name}: batch_size={self.batch_size} must be >= 1.")
        check_requested_dtype(self.dtype, f"profile {self.name}: dtype")
        from t2core.svf.placement import factor_dtype_setting

        try:  # auto is resolved where work starts (resolved_factor_dtype), not here
            factor_dtype_setting(self.factor_dtype)
        except ConfigError as e:
            raise ConfigError(f"profile {self.name}: {e}") from None
        if self.factor_dtype == "bfloat16" and self.dtype != "bfloat16":
            raise ConfigError(f"profile {self.name}: factor_dtype='bfloat16' needs dtype='bfloat16' (a float32 forward "
                              "would compute with rounded U and V); set both, or keep factor_dtype='float32'.")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(f"profile {self.name}: max_new_tokens={self.max_new_tokens} must be >= 1.")


_PROFILES: Registry[Profile] = Registry("profile")


def register_profile(p: Profile) -> Profile:
    return _PROFILES.register(p.name, p)


def profile_names() -> list[str]:
    return _PROFILES.names()


def get_profile(name: str) -> Profile:
    return _PROFILES.get(name)
