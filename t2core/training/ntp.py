"""Training by next-token prediction on reference solutions: the LoRA-NTP baseline (paper §4.1),
IA3 and DoRA (Table 7), and SVF-NTP (Table 4).

One config (`NTPConfig`), one batch builder and one loop (`ntp_steps`) for every method; each
method's trainer is a module that registers itself (`peft_ntp.py`, `svf_ntp.py`), and `train_ntp`
picks it by `cfg.method`. LoRA follows the paper: rank 16, alpha 32, dropout 0.05 on q_proj and
v_proj. The loss is the cross-entropy of the reference answer tokens only (the chat prompt is context).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from t2core.artifacts import ArtifactStore
from t2core.errors import ConfigError, DataError
from t2core.hashing import canonical_json, sha256_bytes
from t2core.ids import content_id
from t2core.methods import method_of
from t2core.models.registry import LoadedModel
from t2core.paths import resolve_data_dir
from t2core.precision import autocast_for
from t2core.registry import Registry
from t2core.sampling.hf import render_prompt
from t2core.settings import resolved_dtype
from t2core.tasks import get_task
from t2core.tasks.base import Task
from t2core.training.recompute import recomputed


@dataclass(frozen=True)
class NTPConfig:
    task: str
    method: str = field(default="lora", metadata={"help": "lora, ia3, dora or svf (SVF-NTP, Table 4)"})
    rank: int = field(default=16, metadata={"help": "LoRA/DoRA rank (paper 16)"})
    alpha: int = field(default=32, metadata={"help": "LoRA/DoRA alpha (paper 32)"})
    dropout: float = field(default=0.05, metadata={"help": "LoRA/DoRA dropout (paper 0.05)"})
    target_modules: tuple[str, ...] = field(default=("q_proj", "v_proj"), metadata={"help": "paper: q, v"})
    steps: int = 50
    batch_size: int = 8
    lr: float = 2e-4
    micro_batch_size: int | None = field(default=None, metadata={
        "help": "examples per forward, gradients accumulated (None: the whole batch). Bounds memory (the paper's "
                "batch of 256 on an 8B model); the update is the batch's token-mean loss either way, so it is not "
                "part of the adapter id", "identity": False})
    train_limit: int | None = None
    split: str = field(default="train", metadata={"help": "the split trained on (paper A.1's equal halves: train_eq)"})
    max_len: int = 512
    grad_checkpointing: bool = field(default=False, metadata={
        "help": "recompute each layer's activations in the backward (t2core/training/recompute.py): memory for "
                "compute, the same update up to rounding, so not part of the adapter's id", "identity": False})
    dtype: str = "float32"
    seed: int = 0
    # paper Table 8: train on the few-shot prompts of an unseen task instead of a training split: the
    # `shots` items drawn exactly as few-shot adaptation draws them (same split, same seed)
    shots: int | None = field(default=None, metadata={"help": "train on N few-shot prompts (Table 8's IA3)"})
    shot_split: str = field(default="train", metadata={"help": "where the shots come from: train or valid"})
    svf_targets: str = field(default="mlp", metadata={"help": "svf: the matrices whose singular values train "
                                                                "(mlp, attn, both); unused by the PEFT methods"})

    def __post_init__(self) -> None:
        from t2core.models.targets import check_target_spec

        check_target_spec(self.svf_targets)
        get_task(self.task).check_split(self.split)
        if self.shots is not None and self.shots < 1:
            raise ConfigError(f"shots={self.shots} must be >= 1 (or None: the training split).")
        if self.shots is not None:
            from t2core.adapt.fewshot import SHOT_SPLITS

            if self.shot_split not in SHOT_SPLITS:
                raise ConfigError(f"few-shot split {self.shot_split!r}: the shots come from train or valid, never test.")
        method_of("ntp", self.method)  # lora, ia3, dora or svf (SVF-NTP): one line naming them otherwise
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise ConfigError(f"micro_batch_size={self.micro_batch_size} must be >= 1 or None.")
        for name in ("rank", "alpha", "steps", "batch_size", "max_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1.")
        resolved_dtype(self)  # "auto" -> this machine's dtype, before any id is hashed
        if not 0 <= self.dropout < 1 or not self.lr > 0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1) and lr={self.lr} > 0.")


def lora_pg_settings(task: str, seed: int) -> NTPConfig:
    """The LoRA of LoRA-PG (the paper's policy-gradient LoRA baseline): the LoRA-NTP settings (r 16,
    alpha 32, dropout 0.05 on q, v), built here once for the policy, the stored adapter and the run id."""
    return NTPConfig(task=task, seed=seed)


def lora_identity(cfg: NTPConfig) -> dict:
    """The adapter settings that change a LoRA: what a LoRA-PG run id covers."""
    return {k: v for k, v in asdict(cfg).items() if k in ("method", "rank", "alpha", "dropout", "target_modules")}


def ntp_batch(tok, task: Task, samples: list, max_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input ids, attention mask, labels), each (B, T): chat prompt + reference answer + EOS, labels
    -100 on the prompt and the padding, so the loss is the answer tokens' cross-entropy only."""
    ids, labels = [], []
    for s in samples:
        p = tok(render_prompt(tok, task.messages(s)), add_special_tokens=False)["input_ids"]
        a = tok(task.reference_completion(s), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ids.append((p + a)[:max_len])
        labels.append(([-100] * len(p) + a)[:max_len])
    width = max(len(x) for x in ids)
    x = torch.full((len(ids), width), tok.pad_token_id)
    y = torch.full((len(ids), width), -100)
    m = torch.zeros((len(ids), width), dtype=torch.long)
    for i, (a, b) in enumerate(zip(ids, labels, strict=True)):
        x[i, : len(a)], y[i, : len(b)], m[i, : len(a)] = torch.tensor(a), torch.tensor(b), 1
    return x, m, y


def first_counted(y: torch.Tensor) -> int:
    """The first position whose prediction (of label t + 1) the loss counts, from labels (B, T)."""
    counted = (y[:, 1:] != -100).any(0).nonzero()
    return int(counted[0]) if len(counted) else 0


def answer_loss(model: torch.nn.Module, x: torch.Tensor, m: torch.Tensor, y: torch.Tensor,
                start: int | None = None) -> torch.Tensor:
    """The token-mean cross-entropy of the answer tokens (labels not -100): what a causal LM computes from
    `labels=` (label t + 1 predicted at position t, in float32), with logits made only from the first position
    that predicts an answer token on. The prompt's positions predict nothing the loss counts; their logits,
    (B, T, V) with V = 49,152 for SmolLM2 and kept for the backward in float32, were a large part of a
    LoRA-NTP step's memory and their head a fifth of its matmuls (issue 43). Shapes: x, m, y (B, T).
    `start`: that first position, when the caller has it (`first_counted` of the labels on the host)."""
    if start is None:
        start = first_counted(y)
    logits = model(input_ids=x, attention_mask=m, logits_to_keep=x.shape[1] - start).logits  # (B, T - start, V)
    v = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].float().reshape(-1, v), y[:, start + 1:].reshape(-1), ignore_index=-100)


def ntp_steps(model: torch.nn.Module, tok, task: Task, ds, cfg: NTPConfig, opt: torch.optim.Optimizer,
              rng: random.Random, on_log: Callable[[int, float], None] | None = None) -> list[float]:
    """`cfg.steps` optimizer steps of next-token prediction on batches drawn with `rng` from `ds`: the one
    loop of every NTP trainer (PEFT adapters in `peft_ntp.py`, SVF-NTP in `svf_ntp.py`). Returns the losses."""
    dev = next(model.parameters()).device
    losses: list[float] = []
    mb = cfg.micro_batch_size or cfg.batch_size
    for step in range(1, cfg.steps + 1):
        picked = [ds.samples[rng.randrange(len(ds.samples))] for _ in range(cfg.batch_size)]
        parts = [ntp_batch(tok, task, picked[lo:lo + mb], cfg.max_len) for lo in range(0, len(picked), mb)]
        # each micro-batch's token-mean loss weighted by its share of the batch's answer tokens: the gradient
        # of the whole batch's token-mean loss (the causal LM loss predicts labels[:, 1:])
        counts = [int((y[:, 1:] != -100).sum()) for _, _, y in parts]
        total_tokens = max(sum(counts), 1)
        opt.zero_grad(set_to_none=True)
        step_loss = 0.0
        for (x, m, y), k in zip(parts, counts, strict=True):
            with autocast_for(cfg.dtype, dev), recomputed(model, cfg.grad_checkpointing):
                loss = answer_loss(model, x.to(dev), m.to(dev), y.to(dev), first_counted(y))  # params fp32
            loss = loss * (k / total_tokens)
            loss.backward()
            step_loss += float(loss.detach())
        opt.step()
        losses.append(step_loss)
        if on_log:
            on_log(step, losses[-1])
    return losses


def training_text_sha256(task: Task, ds) -> str:
    """The sha256 of what next-token prediction trains on: each sample's prompt (the task's messages) and
    its reference completion, in order. A change of prompt or of reference text (a fidelity fix) is
    another adapter, even where the data files and the task's version are the same."""
    return sha256_bytes(canonical_json([[task.messages(s), task.reference_completion(s)] for s in ds.samples]).encode())


def adapter_id(weights_hash: str, cfg: NTPConfig, data_files: dict[str, str], task_version: str,
               text_sha256: str) -> str:
    """The content id of an NTP result: the weights, the config's identity fields, the data files, the
    task's version and the training text (`training_text_sha256`). Ids made before the last two were part
    of it (t2 before issue 40) name adapters that are not reused: `t2 baseline` trains them again."""
    d = asdict(cfg)
    del d["micro_batch_size"], d["grad_checkpointing"]  # memory, not the result (identity=False)
    if d["shots"] is None:  # optional settings are left out at their defaults: one payload shape per setting
        del d["shots"], d["shot_split"]
    if cfg.method != "svf":
        del d["svf_targets"]
    if d["split"] == "train":
        del d["split"]
    return content_id(["ntp", weights_hash, d, sorted(data_files.values()),
                       {"task_version": task_version, "text": text_sha256}])


@dataclass
class NTPResult:
    adapter_id: str
    path: Path
    losses: list[float]
    n_trainable: int
    seconds: float
    data_files: dict[str, str]
    reused: bool = False  # True: the stored adapter was returned, nothing trained
    expert_id: str | None = None  # SVF-NTP: the expert's content id (svf:<hex>)

    def variant(self, method: str) -> str:
        """What `t2 eval --expert` takes: svf:<hex> for SVF-NTP, else <method>:<adapter id>."""
        return self.expert_id or f"{method}:{self.adapter_id}"


def plan_ntp(weights_hash: str, cfg: NTPConfig, data_dir: str | Path | None = None):
    """(training Dataset, adapter id) without training: the id is the content key of the result."""
    if cfg.shots is not None:  # the few-shot prompts few-shot adaptation would use (same split and seed)
        from t2core.adapt.cem import CEMConfig
        from t2core.adapt.fewshot import FewShotConfig, pick_shots

        ds = pick_shots(FewShotConfig(task=cfg.task, shots=cfg.shots, split=cfg.shot_split,
                                      cem=CEMConfig(seed=cfg.seed)), data_dir)
        return ds, _id_of(weights_hash, cfg, ds)
    ds = get_task(cfg.task).load(cfg.split, resolve_data_dir(data_dir)).limit(cfg.train_limit)
    if not ds.samples:
        raise DataError(f"task {cfg.task!r} has no training samples; nothing to fine-tune on.")
    return ds, _id_of(weights_hash, cfg, ds)


def _id_of(weights_hash: str, cfg: NTPConfig, ds) -> str:
    task = get_task(cfg.task)
    return adapter_id(weights_hash, cfg, ds.files, task.version, training_text_sha256(task, ds))


_TRAINERS: Registry[Callable[..., NTPResult]] = Registry("NTP trainer")
PEFT = "peft"  # the trainer of every method whose file gives a PEFT adapter config (`Method.peft`)


def register_ntp_trainer(key: str, train: Callable[..., NTPResult]) -> None:
    """`train(loaded, cfg, ds, aid, store, on_log)` trains (or reuses, by `aid`) one method's result. `key`:
    PEFT for the trainer of every PEFT method (`peft_ntp.py`), else a method's selector (`svf_ntp.py`)."""
    _TRAINERS.register(key, train)


def trainer_key(method: str) -> str:
    """Which trainer trains `method`: a PEFT method (its file gives `peft=`) the PEFT one, so that a new
    PEFT method is one file; another the one registered under its selector."""
    return PEFT if method_of("ntp", method).peft is not None else method


def train_ntp(loaded: LoadedModel, cfg: NTPConfig, data_dir: str | Path | None = None,
              store: ArtifactStore | None = None, on_log: Callable[[int, float], None] | None = None) -> NTPResult:
    """Train `cfg.method` by next-token prediction on its data (or reuse the stored result)."""
    ds, aid = plan_ntp(loaded.weights_hash, cfg, data_dir)
    return _TRAINERS.get(trainer_key(cfg.method))(loaded, cfg, ds, aid, store or ArtifactStore(), on_log)
