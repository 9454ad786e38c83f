"""PEFT baselines trained by next-token prediction on reference solutions (LoRA-NTP, paper §4.1;
IA3 and DoRA for Table 7).

LoRA follows the paper: rank 16, alpha 32, dropout 0.05 on q_proj and v_proj. The loss is
the cross-entropy of the reference answer tokens only (the chat prompt is context).
`peft` is imported lazily (`pip install 't2[baselines]'`).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from t2core.artifacts import ArtifactStore
from t2core.errors import ConfigError, DataError, T2Error
from t2core.hashing import canonical_json, sha256_bytes
from t2core.models.registry import LoadedModel
from t2core.paths import resolve_data_dir
from t2core.sampling.hf import render_prompt
from t2core.settings import resolved_dtype
from t2core.tasks import get_task
from t2core.tasks.base import ChoiceSample, CodeSample, MathSample, Task

METHODS = ("lora", "ia3", "dora", "svf")  # svf: SVF trained by next-token prediction (paper Table 4, t2core/svf/ntp.py)
KIND = "adapters"


def _peft():
    try:
        import peft
    except ImportError as e:
        raise T2Error("the LoRA/IA3/DoRA baselines need `peft`: pip install 't2[baselines]'.") from e
    return peft


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
    train_limit: int | None = None
    max_len: int = 512
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
        get_task(self.task)
        if self.shots is not None and self.shots < 1:
            raise ConfigError(f"shots={self.shots} must be >= 1 (or None: the training split).")
        if self.method not in METHODS:
            raise ConfigError(f"method {self.method!r} is not one of {METHODS}.")
        for name in ("rank", "alpha", "steps", "batch_size", "max_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1.")
        resolved_dtype(self)  # "auto" -> this machine's dtype, before any id is hashed
        if not 0 <= self.dropout < 1 or not self.lr > 0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1) and lr={self.lr} > 0.")


def reference_completion(task: Task, sample) -> str:
    """The answer text a perfect model would produce under the task's prompt."""
    if task.output_type == "choice":  # the correct candidate continuation (cloze ARC: "Answer: <text>")
        return task.candidates(sample)[task.gold_candidate(sample)]
    if isinstance(sample, ChoiceSample):
        return sample.answer
    if isinstance(sample, CodeSample):
        return f"```python\n{sample.solution.strip()}\n```"
    if isinstance(sample, MathSample):
        if task.name == "gsm8k":
            return f"{sample.solution}\nThe answer is: {sample.answer}"
        return sample.solution
    raise TypeError(f"no reference completion for {type(sample).__name__}")


def ntp_batch(tok, task: Task, samples: list, max_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input ids, attention mask, labels), each (B, T): chat prompt + reference answer + EOS, labels
    -100 on the prompt and the padding, so the loss is the answer tokens' cross-entropy only."""
    ids, labels = [], []
    for s in samples:
        p = tok(render_prompt(tok, task.messages(s)), add_special_tokens=False)["input_ids"]
        a = tok(reference_completion(task, s), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ids.append((p + a)[:max_len])
        labels.append(([-100] * len(p) + a)[:max_len])
    width = max(len(x) for x in ids)
    x = torch.full((len(ids), width), tok.pad_token_id)
    y = torch.full((len(ids), width), -100)
    m = torch.zeros((len(ids), width), dtype=torch.long)
    for i, (a, b) in enumerate(zip(ids, labels, strict=True)):
        x[i, : len(a)], y[i, : len(b)], m[i, : len(a)] = torch.tensor(a), torch.tensor(b), 1
    return x, m, y


def ntp_steps(model: torch.nn.Module, tok, task: Task, ds, cfg: NTPConfig, opt: torch.optim.Optimizer,
              rng: random.Random, on_log: Callable[[int, float], None] | None = None) -> list[float]:
    """`cfg.steps` optimizer steps of next-token prediction on batches drawn with `rng` from `ds`: the one
    loop of every NTP trainer (PEFT adapters here, SVF-NTP in `t2core/svf/ntp.py`). Returns the losses."""
    dev = next(model.parameters()).device
    losses: list[float] = []
    for step in range(1, cfg.steps + 1):
        x, m, y = ntp_batch(tok, task, [ds.samples[rng.randrange(len(ds.samples))] for _ in range(cfg.batch_size)],
                            cfg.max_len)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.dtype == "bfloat16"):
            loss = model(input_ids=x.to(dev), attention_mask=m.to(dev), labels=y.to(dev)).loss  # trained params fp32
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if on_log:
            on_log(step, losses[-1])
    return losses


def peft_config(cfg: NTPConfig):
    peft = _peft()
    if cfg.method in ("lora", "dora"):
        return peft.LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                               target_modules=list(cfg.target_modules), use_dora=cfg.method == "dora",
                               task_type="CAUSAL_LM")
    return peft.IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"],
                          task_type="CAUSAL_LM")


def adapter_id(weights_hash: str, cfg: NTPConfig, data_files: dict[str, str]) -> str:
    d = asdict(cfg)
    if d["shots"] is None:  # adapters trained on a training split keep the ids they had before shots existed
        del d["shots"], d["shot_split"]
    if cfg.method != "svf":  # likewise before SVF-NTP existed
        del d["svf_targets"]
    return sha256_bytes(canonical_json(["ntp", weights_hash, d, sorted(data_files.values())]).encode())[:24]


@contextlib.contextmanager
def with_adapter(loaded: LoadedModel, path: Path | None = None, cfg: NTPConfig | None = None
                 ) -> Iterator[LoadedModel]:
    """Inject a PEFT adapter (fresh from `cfg`, or saved at `path`) into the model; removed afterwards."""
    peft = _peft()
    if path is not None:
        pm = peft.PeftModel.from_pretrained(loaded.model, str(path), is_trainable=False)
    else:
        pm = peft.get_peft_model(loaded.model, peft_config(cfg))
    try:
        yield replace(loaded, model=pm)
    finally:
        pm.unload()  # back to the plain base modules, weights untouched


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
        return ds, adapter_id(weights_hash, cfg, ds.files)
    ds = get_task(cfg.task).load("train", resolve_data_dir(data_dir)).limit(cfg.train_limit)
    if not ds.samples:
        raise DataError(f"task {cfg.task!r} has no training samples; nothing to fine-tune on.")
    return ds, adapter_id(weights_hash, cfg, ds.files)


def train_ntp(loaded: LoadedModel, cfg: NTPConfig, data_dir: str | Path | None = None,
              store: ArtifactStore | None = None, on_log: Callable[[int, float], None] | None = None) -> NTPResult:
    task = get_task(cfg.task)
    ds, aid = plan_ntp(loaded.weights_hash, cfg, data_dir)
    store = store or ArtifactStore()
    if cfg.method == "svf":
        from t2core.svf.ntp import train_svf_ntp

        return train_svf_ntp(loaded, cfg, ds, aid, store, on_log)
    if store.exists(KIND, aid):  # content-addressed: same weights, config and data -> same adapter
        man = store.verify(KIND, aid)
        return NTPResult(aid, store.path(KIND, aid), [], int(man.meta.get("n_trainable", 0)), 0.0, ds.files, True)
    tok = loaded.tokenizer
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    t0 = time.perf_counter()
    with with_adapter(loaded, cfg=cfg) as lm:
        pm = lm.model
        pm.train()
        params = [p for p in pm.parameters() if p.requires_grad]
        n_trainable = sum(p.numel() for p in params)
        opt = torch.optim.AdamW(params, lr=cfg.lr)
        losses = ntp_steps(pm, tok, task, ds, cfg, opt, rng, on_log)
        pm.eval()

        def write(tmp: Path) -> dict:
            pm.save_pretrained(str(tmp))
            return {"method": cfg.method, "task": cfg.task, "n_trainable": n_trainable}

        store.write(KIND, aid, write, meta={"weights_hash": loaded.weights_hash, "config": asdict(cfg)})
    return NTPResult(aid, store.path(KIND, aid), losses, n_trainable, time.perf_counter() - t0, ds.files)
