"""REINFORCE training config for SVF experts (paper §3.2 Eq. 1, Appendix A).

Where the paper's text and its released code disagree, both are settings here and each profile says which it
uses (docs/svf-and-training.md): the optimiser and schedule (`optimizer`), how log π(ŷ|x) and the KL of a
generated answer are reduced over its tokens (`seq_reduction`), and the KL's direction (`kl_direction`).
Each of these is marked `legacy` with t2's behaviour from before it existed, so stored runs keep their ids
and any other value gives a new id (`t2core.ids.identity_fields`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from t2core.errors import ConfigError
from t2core.methods import method_of
from t2core.sampling.base import GenerationConfig
from t2core.settings import resolved_dtype
from t2core.svf.policy import SVFConfig
from t2core.tasks import get_task
from t2core.training.optim import check_optimizer

#: How the per-token terms of a generated answer become one number (Eq. 1's log π(ŷ|x) and the KL):
#: `sum` over its tokens (the paper's log π of the sequence; the released code sums both), or `token-mean`.
SEQ_REDUCTIONS = ("token-mean", "sum")
#: `policy-ref`: KL(π_W' ‖ π_W), the paper's Eq. 1; `ref-policy`: KL(π_W ‖ π_W'), what the released code
#: computes (`F.kl_div(input=log π_W', target=log π_W, log_target=True)` is Σ π_W (log π_W − log π_W')).
KL_DIRECTIONS = ("policy-ref", "ref-policy")


@dataclass(frozen=True)
class RLConfig:
    task: str = field(metadata={"help": "training task (gsm8k, mbpp, arc_easy, ...)"})
    train_split: str = field(default="train", metadata={"help": "split rollouts are drawn from"})
    valid_split: str = field(default="valid", metadata={"help": "split for early stopping"})
    steps: int = field(default=50, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=16, metadata={"help": "prompts per step (paper: 256 on GPU)"})
    lr: float = field(default=2e-3, metadata={"help": "learning rate (paper 2e-3): constant, or the cosine's peak"})
    optimizer: str = field(default="adam-constant", metadata={
        "help": "adamw-cosine (paper A.1 text) or adam-constant (released code)", "legacy": "adam-constant"})
    grad_clip: float = field(default=1e-3, metadata={"help": "max grad norm (paper 1e-3)"})
    kl_coef: float = field(default=0.0, metadata={"help": "λ of the KL penalty; paper: chosen on validation "
                                                             "(a profile's kl_grid)"})
    kl_direction: str = field(default="policy-ref", metadata={
        "help": "policy-ref: KL(π_W' ‖ π_W) (paper Eq. 1); ref-policy: KL(π_W ‖ π_W') (released code)",
        "legacy": "policy-ref"})
    seq_reduction: str = field(default="token-mean", metadata={
        "help": "generated answers: log π(ŷ|x) and KL summed over tokens (sum: paper Eq. 1, released code) or "
                "averaged (token-mean); choice tasks score candidates by their summed log-probs either way",
        "legacy": "token-mean"})
    reward_norm: bool = field(default=False, metadata={"help": "normalise rewards to zero mean, unit std"})
    temperature: float = field(default=0.0, metadata={"help": "rollout temperature; 0 = greedy (official code); "
                                                                 "choice tasks: of the draw among the options"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "rollout length cap (None: task's; "
                                                                       "unused by choice tasks)"})
    train_limit: int | None = field(default=None, metadata={"help": "use the first N training samples"})
    valid_every: int = field(default=10, metadata={"help": "validate every k steps"})
    valid_limit: int | None = field(default=50, metadata={"help": "validation samples"})
    gen_batch_size: int = field(default=16, metadata={"help": "generation batch size"})
    micro_batch_size: int | None = field(default=None, metadata={
        "help": "prompts per differentiable forward (gradients accumulated; None: the whole batch). Bounds "
                "training memory; the update is the same up to float rounding, so it is not part of the run id",
        "identity": False})
    grad_checkpointing: bool = field(default=False, metadata={
        "help": "recompute each layer's activations in the backward of generated answers (t2core/training/"
                "recompute.py): a fraction of the memory for ~1/3 more compute; the same update up to rounding, so "
                "not part of the run id. Choice tasks keep their KV cache and do not use it", "identity": False})
    dtype: str = field(default="float32", metadata={"help": "float32 or bfloat16 (autocast, fp32 z)"})
    seed: int = 0
    method: str = field(default="svf", metadata={"help": "svf (paper) or lora (LoRA-PG baseline)"})
    svf: SVFConfig = field(default_factory=SVFConfig)

    def __post_init__(self) -> None:
        task = get_task(self.task)
        task.check_split(self.train_split)
        task.check_split(self.valid_split)
        for name in ("steps", "batch_size", "valid_every", "gen_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1.")
        if not self.lr > 0:
            raise ConfigError(f"lr={self.lr} must be > 0.")
        if not self.grad_clip > 0:
            raise ConfigError(f"grad_clip={self.grad_clip} must be > 0.")
        if self.kl_coef < 0:
            raise ConfigError(f"kl_coef={self.kl_coef} must be >= 0 (paper uses 0, 0.1, 0.2, 0.3).")
        if self.temperature < 0:
            raise ConfigError(f"temperature={self.temperature} must be >= 0.")
        check_optimizer(self.optimizer)
        if self.kl_direction not in KL_DIRECTIONS:
            raise ConfigError(f"kl_direction={self.kl_direction!r} must be one of {', '.join(KL_DIRECTIONS)}.")
        if self.seq_reduction not in SEQ_REDUCTIONS:
            raise ConfigError(f"seq_reduction={self.seq_reduction!r} must be one of {', '.join(SEQ_REDUCTIONS)}.")
        method_of("pg", self.method)  # svf (the paper's) or lora (LoRA-PG): one line naming them otherwise
        resolved_dtype(self)  # "auto" -> this machine's dtype, before any id is hashed
        for name in ("train_limit", "valid_limit", "max_new_tokens", "micro_batch_size"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"{name}={v} must be >= 1 or None.")


    def rollout_generation(self) -> GenerationConfig:
        """The sampling settings of rollouts and validation, resolved once (max_new_tokens None: the task's).

        The run id hashes the config as given (`t2core.ids.identity_fields`), so stored experts keep their ids."""
        return GenerationConfig(max_new_tokens=self.max_new_tokens or get_task(self.task).max_new_tokens,
                                temperature=self.temperature, batch_size=self.gen_batch_size, dtype=self.dtype,
                                seed=self.seed)
