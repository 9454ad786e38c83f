"""Run profiles as data (settings live here, not in code paths): which model, which slices, which generation settings.

- `tiny`: tiny-random, a few samples per benchmark, seconds; for CI and flow tests.
- `smol`: the embedded SmolLM2-135M on small slices; the README default on a laptop CPU.
- `paper`: Llama-3-8B-Instruct on the full test sets (paper §4); needs a GPU.
Adding a profile is one `register_profile(Profile(...))` call.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from t2core.errors import ConfigError
from t2core.models.targets import check_target_spec
from t2core.registry import Registry
from t2core.settings import check_requested_dtype

if TYPE_CHECKING:
    from t2core.training.config import RLConfig

#: The paper's benchmarks: three training tasks, then the three unseen ones (paper §4).
PAPER_TASKS = ("gsm8k", "mbpp", "arc_easy", "math", "humaneval", "arc_challenge")


@dataclass(frozen=True)
class EvalSlice:
    task: str
    split: str = "test"
    limit: int | None = None  # None: the whole split

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"eval slice {self.task}: limit={self.limit} must be >= 1 or None.")


@dataclass(frozen=True)
class TrainSlice:
    """One SVF expert to train: the task and the RLConfig overrides for this profile."""

    task: str
    overrides: tuple[tuple[str, object], ...] = ()  # (RLConfig field, value) pairs

    def __post_init__(self) -> None:
        from t2core.training.config import RLConfig

        _check_keys(f"train slice {self.task}", self.overrides, RLConfig)

    def rl_kwargs(self) -> dict[str, object]:
        return dict(self.overrides)


def _check_keys(where: str, overrides: tuple[tuple[str, object], ...], config_cls: type) -> None:
    """A typo in a profile override fails when the profile is defined (at import), naming the key."""
    known = {f.name for f in fields(config_cls)} - {"task"}
    for key, _ in overrides:
        if key not in known:
            raise ConfigError(f"{where}: unknown {config_cls.__name__} setting {key!r}; known: "
                              f"{', '.join(sorted(known))}.")


@dataclass(frozen=True)
class BaselineSlice:
    """One PEFT baseline to train and evaluate next to the SVF experts (paper Table 1, Table 7).

    `method` lora / ia3 / dora are trained by next-token prediction on reference solutions
    (NTPConfig overrides); `lora-pg` is LoRA trained by the SVF experts' REINFORCE loop
    (RLConfig overrides; the profile's SVF settings for the task are the defaults).
    """

    task: str
    method: str = "lora"
    overrides: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        if self.method not in BASELINE_METHODS:
            raise ConfigError(f"baseline {self.task}: method={self.method!r} must be one of {BASELINE_METHODS}.")
        if self.method == "lora-pg":
            from t2core.training.config import RLConfig as config_cls
        else:
            from t2core.training.ntp import NTPConfig as config_cls
        _check_keys(f"baseline {self.method}/{self.task}", self.overrides, config_cls)

    def kwargs(self) -> dict[str, object]:
        return dict(self.overrides)


BASELINE_METHODS = ("lora", "ia3", "dora", "lora-pg")


@dataclass(frozen=True)
class AdaptSettings:
    """Self-adaptation under a profile (paper §3.3): the experts dispatched and mixed, the unseen task
    slices evaluated two-pass, the classification expert's training and the few-shot search."""

    experts: tuple[str, ...] = field(default=(), metadata={"help": "training tasks whose experts adapt (one per "
                                                                     "category)"})
    unseen: tuple[EvalSlice, ...] = field(default=(), metadata={"help": "slices evaluated with each strategy"})
    formulation: str = field(default="generate", metadata={"help": "pass 1 of prompt / cls-expert dispatch"})
    cls: tuple[tuple[str, object], ...] = field(default=(), metadata={"help": "RLConfig overrides of the "
                                                                              "classification expert"})
    shots: int = field(default=10, metadata={"help": "few-shot prompts per unseen task (train/valid split)"})
    light_shots: int | None = field(default=None, metadata={
        "help": "shots of a second, light few-shot search per searched task (Table 10); None: no light search"})
    cem: tuple[tuple[str, object], ...] = field(default=(), metadata={"help": "CEMConfig overrides"})
    few_shot_tasks: tuple[str, ...] | None = field(default=None, metadata={
        "help": "unseen tasks that get a few-shot search (None: every one with a train or valid split)"})
    loras: str = field(default="all", metadata={
        "help": "LoRAs evaluated on the unseen slices: all (Table 2's best-on-test row needs every one) or "
                "category (the LoRA of the training task with the unseen task's category: chosen without test data)"})

    def __post_init__(self) -> None:
        from t2core.adapt.cem import CEMConfig
        from t2core.adapt.prompt import FORMULATIONS
        from t2core.training.config import RLConfig

        _check_keys("adapt cls-expert", self.cls, RLConfig)
        _check_keys("adapt cem", self.cem, CEMConfig)
        if self.formulation not in FORMULATIONS:
            raise ConfigError(f"adapt formulation {self.formulation!r} must be one of {', '.join(FORMULATIONS)}.")
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
        if (self.method, self.objective, self.targets) in {("lora", "pg", "mlp"), ("lora", "pg", "both")}:
            raise ConfigError("ablation lora-pg: LoRA-PG adapts q and v (the paper's LoRA); use targets='attn'.")
        if any(k == "steps" for k, _ in self.overrides):
            raise ConfigError("ablation overrides: the step budget is the ablation's `steps`, the same for every "
                              "variant; remove 'steps'.")
        _check_keys(f"ablation {self.label}", self.overrides, RLConfig if self.objective == "pg" else NTPConfig)

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
    seed: int = 0
    description: str = ""

    # Settings are resolved here, once, into the typed config of each operation; nothing downstream
    # re-derives them (the flows and `t2 train` call these).
    def train_overrides(self, task: str) -> dict[str, object]:
        """RLConfig settings this profile gives `task`: its dtype, then the task's slice overrides."""
        return {"dtype": self.dtype, **next((t.rl_kwargs() for t in self.trains if t.task == task), {})}

    def seed_or_default(self, seed: int | None) -> int:
        """The seed of a run of this profile: the one given, else the profile's."""
        return self.seed if seed is None else seed

    def rl_config(self, task: str, seed: int | None = None, **given) -> RLConfig:
        """The REINFORCE config of `task` under this profile; `given` (e.g. CLI options) wins."""
        from t2core.svf.policy import SVFConfig
        from t2core.training.config import RLConfig

        kw = {**self.train_overrides(task), **given}
        svf = kw.pop("svf", None) or SVFConfig(targets=self.targets)
        return RLConfig(task=task, seed=self.seed_or_default(seed), svf=svf, **kw)

    def ntp_config(self, baseline: BaselineSlice, seed: int | None = None, **given):
        """The NTPConfig of a next-token-prediction baseline (lora / ia3 / dora; svf in `given`: SVF-NTP)."""
        from t2core.training.ntp import NTPConfig

        kw = {"method": baseline.method, **baseline.kwargs(), **given}
        return NTPConfig(task=baseline.task, seed=self.seed_or_default(seed), **kw)

    def ablation_config(self, v: AblationVariant, seed: int | None = None):
        """The training config of one Table 4 variant: an RLConfig (pg) or an NTPConfig (ntp), with the
        ablation's step budget. PG variants start from the profile's settings for the task (so SVF-PG on
        the profile's targets is the profile's own expert, reused); NTP ones from its LoRA baseline's."""
        from t2core.svf.policy import SVFConfig

        ab = self.ablations
        kw = {**dict(v.overrides), "steps": ab.steps}
        if v.objective == "pg":
            if v.method == "lora":
                return self.rl_config(ab.task, seed, method="lora", **kw)
            return self.rl_config(ab.task, seed, svf=SVFConfig(targets=v.targets), **kw)
        base = next((b.overrides for b in self.baselines if b.task == ab.task and b.method == "lora"), ())
        kw = {"dtype": self.dtype, **dict(base), **kw}
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
        from t2core.svf.policy import SVFConfig
        from t2core.training.config import RLConfig

        kw = {"dtype": self.dtype, **dict(self.adapt.cls)}
        return RLConfig(task="dispatch", seed=self.seed_or_default(seed), svf=SVFConfig(targets=self.targets), **kw)

    def few_shot_config(self, task: str, seed: int | None = None, **given):
        """The few-shot search of `task`: the profile's shots, CEM settings, batch size and dtype."""
        from t2core.adapt.cem import CEMConfig
        from t2core.adapt.fewshot import FewShotConfig
        from t2core.tasks import get_task

        cem_kw = {**dict(self.adapt.cem), **given.pop("cem", {})}
        cap = self.max_new_tokens
        mnt = min(cap, get_task(task).max_new_tokens) if cap is not None else None
        kw = dict(shots=self.adapt.shots, batch_size=self.batch_size, dtype=self.dtype, max_new_tokens=mnt)
        return FewShotConfig(task=task, cem=CEMConfig(seed=self.seed_or_default(seed), **cem_kw), **{**kw, **given})

    def __post_init__(self) -> None:
        check_target_spec(self.targets)
        untrained = [t for t in (*self.adapt.experts, *(self.transfer.experts or ()))
                     if t not in {tr.task for tr in self.trains}]
        if untrained:
            raise ConfigError(f"profile {self.name}: adapt/transfer experts {untrained} are not among its trained tasks.")
        from t2core.sampling import check_sampler

        check_sampler(self.sampler)
        if self.batch_size < 1:
            raise ConfigError(f"profile {self.name}: batch_size={self.batch_size} must be >= 1.")
        check_requested_dtype(self.dtype, f"profile {self.name}: dtype")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(f"profile {self.name}: max_new_tokens={self.max_new_tokens} must be >= 1.")


_PROFILES: Registry[Profile] = Registry("profile")


def register_profile(p: Profile) -> Profile:
    return _PROFILES.register(p.name, p)


def profile_names() -> list[str]:
    return _PROFILES.names()


def get_profile(name: str) -> Profile:
    return _PROFILES.get(name)


TRAIN_TASKS = ("gsm8k", "mbpp", "arc_easy")  # one expert per training task (paper §4.1)

_TINY_RL = (("steps", 2), ("batch_size", 2), ("train_limit", 8), ("valid_limit", 3), ("valid_every", 2),
            ("max_new_tokens", 4), ("temperature", 1.0))
# CPU budget for generated answers (GSM8K, MBPP). Rollouts are sampled (T=0.7) with
# batch-normalised rewards: at 135M greedy rollouts are nearly all wrong (or, for lettered
# ARC, nearly all "A"), which leaves almost no mixed rewards to learn from.
_SMOL_RL = (("batch_size", 16), ("temperature", 0.7), ("reward_norm", True), ("lr", 5e-3),
            ("valid_limit", 100), ("valid_every", 10))
# ARC in the cloze formulation (t2core/tasks/arc_cloze.py): the answer is drawn from the
# model's own distribution over the item's options (T=1), so rewards are mixed from step 1.
# One differentiable forward per step, no micro-batches: micro-batches of 4 prompts cut the peak
# memory from 5.7 to 2.3 GB but cost 1.40x the time in fp32 on 2 AVX2 cores (bench/choice.py), and
# 5.7 GB fits a laptop. The expert is the same either way (micro_batch_size is not in the run id).
_SMOL_CLOZE = (("batch_size", 16), ("temperature", 1.0), ("reward_norm", True), ("lr", 5e-3),
               ("valid_limit", 200), ("valid_every", 10), ("steps", 30))
# GSM8K and MBPP: 3 steps of 8 (at 135M, 5 steps never beat base on validation, 0/16 and 3/16, in fp32 and
# the experts stayed z = 1; the signal is weak, README "What SmolLM2-135M can and cannot learn here")
_SMOL_LONG = (("batch_size", 8), ("steps", 3), ("max_new_tokens", 160), ("valid_limit", 16), ("valid_every", 3))

# LoRA-NTP on CPU: a few dozen AdamW steps on reference solutions (paper: r16, alpha 32, q/v).
_SMOL_NTP = (("steps", 30), ("batch_size", 8), ("lr", 5e-4), ("max_len", 384))

register_profile(Profile(
    # fp32 on every machine: the tests compare its numbers across machines and samplers
    name="tiny", model="tiny-random", batch_size=4, max_new_tokens=8, dtype="float32",
    evals=tuple(EvalSlice(t, limit=3) for t in (*PAPER_TASKS, "arc_easy_cloze")),
    trains=tuple(TrainSlice(t, _TINY_RL) for t in (*TRAIN_TASKS, "arc_easy_cloze")),
    baselines=(BaselineSlice("arc_easy", "lora", (("steps", 2), ("batch_size", 2), ("train_limit", 8))),
               BaselineSlice("arc_easy", "lora-pg")),
    adapt=AdaptSettings(experts=("gsm8k", "mbpp", "arc_easy_cloze"),
                        unseen=(EvalSlice("math", limit=3), EvalSlice("humaneval", limit=3),
                                EvalSlice("arc_challenge_cloze", limit=3)),
                        cls=_TINY_RL, shots=3, light_shots=2, cem=(("population", 4), ("generations", 2))),
    # transfer onto a twin (same shapes, other weights: the paper's setting in miniature)
    ablations=AblationSettings(
        task="arc_easy_cloze", steps=2, in_full_paper=True,
        evals=(EvalSlice("arc_easy_cloze", limit=3), EvalSlice("arc_challenge_cloze", limit=3)),
        variants=(AblationVariant("svf", "pg", "mlp"), AblationVariant("svf", "pg", "attn"),
                  AblationVariant("svf", "ntp", "mlp", (("batch_size", 2), ("train_limit", 8))),
                  AblationVariant("lora", "pg", "attn"),
                  AblationVariant("lora", "ntp", "attn", (("batch_size", 2), ("train_limit", 8))))),
    transfer=TransferSettings(dst="tiny-random-twin", experts=("arc_easy_cloze",),
                              evals=(EvalSlice("arc_easy_cloze", limit=3),),
                              unseen=(EvalSlice("arc_challenge_cloze", limit=3),), few_shot=True),
    description="tiny random model, 3 samples per benchmark: seconds (CI, flow tests)",
))
register_profile(Profile(
    name="smol", model="smollm2-135m", batch_size=16, max_new_tokens=256,
    # Base-model slices: Table 1's training tasks, and MATH and HumanEval for Table 2 (ARC-Challenge cloze's base
    # run is the adaptation slice's; the letter ARC-Challenge, at chance at 135M and in no table, is left out).
    evals=(EvalSlice("gsm8k", limit=16), EvalSlice("mbpp", limit=16), EvalSlice("arc_easy", limit=200),
           EvalSlice("math", limit=16), EvalSlice("humaneval", limit=16), EvalSlice("arc_easy_cloze", limit=200)),
    # The reasoning expert learns ARC-Easy in the cloze formulation: with letters, SmolLM2's
    # answer does not depend on the question (README: "What SmolLM2-135M can and cannot learn").
    trains=(TrainSlice("arc_easy_cloze", _SMOL_CLOZE),
            TrainSlice("gsm8k", _SMOL_RL + _SMOL_LONG),
            TrainSlice("mbpp", _SMOL_RL + _SMOL_LONG)),
    # LoRA-NTP: 30 steps of 8 on ARC-Easy cloze; 15 of 4 on GSM8K and MBPP, whose ~250-token solutions made these
    # two the most expensive stages after the ARC expert on a 2-core fp32 machine (docs/performance.md; at 20 of 4
    # their Table 1 cells equalled base's, 0/16 and 3/16)
    baselines=(BaselineSlice("gsm8k", "lora", _SMOL_NTP + (("batch_size", 4), ("steps", 15))),
               BaselineSlice("mbpp", "lora", _SMOL_NTP + (("batch_size", 4), ("steps", 15))),
               BaselineSlice("arc_easy_cloze", "lora", _SMOL_NTP)),
    # Self-adaptation on 2 cores (the budget is `make run` <= 60 min in all on a 2-core AVX2 machine in fp32,
    # issue 19): ARC-Challenge cloze on the first 200 test items (seven full evaluations and two pass-1
    # classifications of it were half of the run at 1,172, 17.5 of 70.7 min at 400, 12.7 of 61.2 at 300;
    # paired McNemar against base at every n); the classification
    # expert trains 10 steps of 8 (its validation accuracy was 0.956 at step 10 and 1.000 at step 20, in
    # fp32 on 2 AVX2 cores: docs/performance.md); MATH and HumanEval on 16 each; the letter
    # ARC-Challenge (at chance at 135M) is left out. CEM with 16 candidates (the paper's 32 cost ~1 min a
    # generation in fp32 on 2 AVX2 cores).
    # At most 10 CEM generations (16 candidates x 10 shots each), on the
    # cloze task only (a generated-answer CEM costs minutes per generation); a light search on 3 shots (Table 10,
    # ~0.5 min + one 2-min evaluation). LoRA on the unseen tasks: the
    # one of the same category only (three LoRAs on three slices would cost ~15 min).
    adapt=AdaptSettings(experts=("gsm8k", "mbpp", "arc_easy_cloze"),
                        unseen=(EvalSlice("arc_challenge_cloze", limit=200), EvalSlice("math", limit=16),
                                EvalSlice("humaneval", limit=16)),
                        formulation="choice",
                        cls=_SMOL_CLOZE + (("steps", 10), ("batch_size", 8), ("valid_limit", 90)),
                        shots=10, light_shots=3, cem=(("population", 16), ("generations", 10), ("patience", 3)),
                        few_shot_tasks=("arc_challenge_cloze",), loras="category"),
    # Transfer is its own flow here (`t2 run transfer --profile smol --dst qwen2.5-coder-0.5b`), outside
    # `make run`'s budget: the ARC-Easy cloze expert (the one that learns at 135M) on 500 test items of
    # ARC-Easy and ARC-Challenge cloze, ordered / shuffled / random against the destination's base.
    # Table 4 (`t2 run ablations --profile smol`, its own flow): where SmolLM2 learns, ARC-Easy cloze, 30 steps
    # each (the expert's budget: SVF-PG mlp is the profile's expert and LoRA-NTP attn its LoRA, both reused),
    # zero-shot on ARC-Challenge cloze. SVF-NTP gets SVF-PG's learning rate (LoRA's 5e-4 barely moves z).
    ablations=AblationSettings(
        task="arc_easy_cloze", steps=30,
        evals=(EvalSlice("arc_easy_cloze", limit=200), EvalSlice("arc_challenge_cloze", limit=500)),
        variants=(AblationVariant("svf", "pg", "mlp"), AblationVariant("svf", "pg", "attn"),
                  AblationVariant("svf", "pg", "both"), AblationVariant("svf", "ntp", "mlp", (("lr", 5e-3),)),
                  AblationVariant("lora", "pg", "attn"), AblationVariant("lora", "ntp", "attn"),
                  AblationVariant("lora", "ntp", "both"))),
    transfer=TransferSettings(experts=("arc_easy_cloze",), evals=(EvalSlice("arc_easy_cloze", limit=500),),
                              unseen=(EvalSlice("arc_challenge_cloze", limit=500),)),
    description="embedded SmolLM2-135M on small slices: minutes on a laptop CPU",
))
register_profile(Profile(
    name="paper", model="llama3-8b", batch_size=32,
    evals=tuple(EvalSlice(t) for t in PAPER_TASKS),
    # 256 rollouts per step cannot be scored in one differentiable forward of an 8B model: micro-batches
    # of 8 (an untested starting point: this project has no GPU run yet)
    trains=tuple(TrainSlice(t, (("batch_size", 256), ("steps", 200), ("kl_coef", 0.1), ("micro_batch_size", 8)))
                 for t in TRAIN_TASKS),
    baselines=tuple(BaselineSlice(t, m, (("steps", 200), ("batch_size", 32)) if m != "lora-pg" else ())
                    for t in TRAIN_TASKS for m in ("lora", "lora-pg")),
    # the paper's settings (§3.3, Appendix): cls-expert on 400 questions per training task, CEM with
    # population 32, elite 0.2, at most 100 generations, 10 shots; the light search's 3 shots are this
    # project's choice, not a number from the paper
    adapt=AdaptSettings(experts=TRAIN_TASKS, unseen=tuple(EvalSlice(t) for t in ("math", "humaneval", "arc_challenge")),
                        cls=(("train_limit", 1200), ("batch_size", 64), ("steps", 200)), shots=10, light_shots=3),
    # Table 4 as the paper ran it: Llama-3-8B on GSM8K, zero-shot on MATH
    ablations=AblationSettings(
        task="gsm8k", steps=200, evals=(EvalSlice("gsm8k"), EvalSlice("math")),
        variants=(AblationVariant("svf", "pg", "mlp"), AblationVariant("svf", "pg", "attn"),
                  AblationVariant("svf", "pg", "both"), AblationVariant("svf", "ntp", "attn"),
                  AblationVariant("lora", "pg", "attn"), AblationVariant("lora", "ntp", "attn"),
                  AblationVariant("lora", "ntp", "both"))),
    # the paper's transfer (§4.4): Llama-3-8B-Instruct's experts onto Mistral-7B-Instruct-v0.3 (same shapes)
    transfer=TransferSettings(dst="mistral-7b", evals=tuple(EvalSlice(t) for t in TRAIN_TASKS),
                              unseen=tuple(EvalSlice(t) for t in ("math", "humaneval", "arc_challenge")), few_shot=True),
    description="Llama-3-8B-Instruct, full test sets (paper §4): GPU",
))
