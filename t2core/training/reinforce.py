"""REINFORCE for SVF experts (paper §3.2, Eq. 2):

    J(z) = E[ log π_W'(ŷ | x) · r(ŷ, y) ] − λ · KL(π_W' ‖ π_W),   r ∈ {+1, −1}

Each step: draw prompts from the training split, roll out (t2core/training/rollouts.py: W'
materialised for fast generation, or a draw among a choice task's candidates), score with
the task's checker (+1 correct, −1 otherwise; code runs in the sandbox), then one gradient
step on z through the differentiable SVF wrappers: lr 2e-3, grad-norm clip 1e-3 (paper A.1), with
Adam at a constant lr (the released code) or AdamW with cosine decay (the paper's text), as the config's
`optimizer` says (t2core/training/optim.py). Every `valid_every` steps the expert is evaluated
greedily on the validation split; the best-validation z is kept (early stopping). A
checkpoint after every step makes the run resumable after a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from t2core.errors import ConfigError, DataError
from t2core.evaluate import EvalConfig, evaluate
from t2core.faults import fault_injection_point
from t2core.ids import content_id, identity_fields
from t2core.methods import method_of
from t2core.models.registry import LoadedModel
from t2core.paths import resolve_data_dir
from t2core.sampling import Sampler, make_sampler
from t2core.sampling.base import backend_tag, check_exact_sampler, run_backend
from t2core.settings import step_rng
from t2core.svf.apply import SVD
from t2core.svf.policy import SVFPolicy
from t2core.tasks import get_task
from t2core.training import choice  # noqa: F401 - registers the "choice" rollout
from t2core.training.checkpoint import load_checkpoint, save_checkpoint
from t2core.training.config import RLConfig
from t2core.training.ntp import lora_identity, lora_pg_settings
from t2core.training.optim import make_optimizer, set_lr, step_lr
from t2core.training.policies import make_policy
from t2core.training.rollouts import get_rollout


@dataclass
class CurvePoint:
    step: int
    mean_reward: float
    train_acc: float
    kl: float
    loss: float
    grad_norm: float
    valid_acc: float | None
    wall_s: float
    tokens: int


@dataclass
class TrainResult:
    run_id: str
    policy: SVFPolicy | None  # the best-validation z (SVF runs)
    best_state: dict[str, torch.Tensor]  # the best-validation parameters of any policy method
    curve: list[CurvePoint]
    best_step: int
    best_valid: float
    base_valid: float
    data_files: dict[str, str]
    resumed_from: int = 0


def train_run_id(weights_hash: str, cfg: RLConfig, task_version: str, data_files: dict[str, str],
                 backend: str = "hf") -> str:
    """Content id of a training run; `backend`: the engine of the rollouts (`run_backend`)."""
    payload = [f"train-{cfg.method}", weights_hash, identity_fields(cfg), task_version, sorted(data_files.values())]
    payload += backend_tag(backend)
    if method_of("pg", cfg.method).product != "svf":  # LoRA-PG: the LoRA it trains is part of what the run is
        payload.append({"lora": lora_identity(lora_pg_settings(cfg.task, cfg.seed))})
    return content_id(payload)


def plan_training(weights_hash: str, cfg: RLConfig, data_dir: str | Path | None = None, backend: str = "hf"):
    """(training Dataset, {file: sha256} of train + valid data, run id), without training or a model."""
    task = get_task(cfg.task)
    task.preflight()
    ddir = resolve_data_dir(data_dir)
    train = task.load(cfg.train_split, ddir).limit(cfg.train_limit)
    # items no answer can pass (e.g. MBPP tests built on the solution's own classes) carry no reward signal
    train = replace(train, samples=[s for s in train.samples if not task.unjudgeable(s)])
    if not train.samples:
        raise DataError(f"task {cfg.task!r} split {cfg.train_split!r} has no samples; nothing to train on.")
    files = {**train.files, **task.load(cfg.valid_split, ddir).files}
    return train, files, train_run_id(weights_hash, cfg, task.version, files, backend)


class ReinforceTrainer:
    def __init__(self, loaded: LoadedModel, svd: SVD, cfg: RLConfig, data_dir: str | Path | None = None,
                 sampler: Sampler | None = None, checkpoint_dir: Path | None = None,
                 on_log: Callable[[CurvePoint], None] | None = None, planned=None) -> None:
        self.loaded, self.cfg, self.on_log = loaded, cfg, on_log
        self.task = get_task(cfg.task)
        self.data_dir = data_dir
        # `planned`: plan_training's result when the caller already has it (the data is loaded once)
        self.sampler = sampler or make_sampler("hf", loaded=loaded)
        check_exact_sampler(self.sampler, "training")
        self.train, self.data_files, self.run_id = planned or plan_training(loaded.weights_hash, cfg, data_dir,
                                                                            run_backend(self.sampler))
        if self.sampler.receives_svf and not method_of("pg", cfg.method).takes_vectors:
            raise ConfigError(f"sampler {self.sampler.name!r} takes SVF vectors only; train method {cfg.method!r} "
                              "with the hf sampler.")
        self.checkpoint_dir = checkpoint_dir
        self.adapter = make_policy(cfg.method, loaded, svd, cfg)
        self.policy = getattr(self.adapter, "policy", None)  # the SVFPolicy of SVF runs
        self.opt = make_optimizer(cfg.optimizer, self.adapter.parameters(), cfg.lr)
        self.rollout = get_rollout(self.task.output_type)
        self.gen = cfg.rollout_generation()

    # -- validation -------------------------------------------------------------------------------
    def validate(self, base: bool = False) -> float:
        cfg = EvalConfig(self.cfg.task, self.cfg.valid_split, self.cfg.valid_limit,
                         replace(self.gen, temperature=0.0))
        if self.sampler.receives_svf:  # a remote backend applies the vectors to its own copy of the model
            svf = None if base else self.adapter.svf_weights()
            return evaluate(self.loaded, cfg, self.data_dir, sampler=self.sampler, svf=svf).accuracy
        with self.adapter.reference() if base else self.adapter.rollout():
            return evaluate(self.loaded, cfg, self.data_dir, sampler=self.sampler).accuracy

    # -- one REINFORCE step -----------------------------------------------------------------------
    def step(self, step: int) -> CurvePoint:
        cfg = self.cfg
        rng = step_rng(cfg.seed, step)
        batch = [self.train.samples[rng.randrange(len(self.train.samples))] for _ in range(cfg.batch_size)]
        t0 = time.perf_counter()
        ro = self.rollout(self, batch, step)  # by the task's output type (t2core/training/rollouts.py)
        r = torch.tensor([1.0 if ok else -1.0 for ok in ro.correct])
        mean_reward = float(r.mean())  # of the raw ±1 rewards, before any normalisation
        if cfg.reward_norm and len(r) > 1:
            r = (r - r.mean()) / (r.std() + 1e-6)
        # loss = mean_i(−r̂_i · log π(ŷ_i | x_i)) + λ · mean_i KL_i, accumulated over micro-batches
        self.opt.zero_grad(set_to_none=True)
        n, mb = len(batch), cfg.micro_batch_size or len(batch)
        loss_sum, kl_sum, has_kl = 0.0, 0.0, False
        for lo in range(0, n, mb):
            idx = list(range(lo, min(lo + mb, n)))
            logp, kl = ro.terms(idx)  # (m,), (m,) | None: differentiable
            loss = -(r[idx].to(logp.device) * logp).sum() / n
            if kl is not None:
                loss = loss + cfg.kl_coef * kl.sum() / n
                kl_sum, has_kl = kl_sum + float(kl.detach().sum()), True
            loss.backward()
            loss_sum += float(loss.detach())
        gnorm = float(torch.nn.utils.clip_grad_norm_(self.adapter.parameters(), cfg.grad_clip))
        set_lr(self.opt, step_lr(cfg.optimizer, cfg.lr, step, cfg.steps))  # a function of the step: resumes exactly
        self.opt.step()
        return CurvePoint(step=step, mean_reward=mean_reward, train_acc=sum(ro.correct) / n,
                          kl=kl_sum / n if has_kl else 0.0, loss=loss_sum, grad_norm=gnorm,
                          valid_acc=None, wall_s=time.perf_counter() - t0, tokens=ro.tokens)

    # -- the loop ---------------------------------------------------------------------------------
    def _state(self, step: int, curve, best, base_valid) -> dict[str, Any]:
        return {"run_id": self.run_id, "step": step, "policy": self.adapter.state(),
                "opt": self.opt.state_dict(), "curve": [asdict(c) for c in curve], "best": best,
                "base_valid": base_valid, "torch_rng": torch.get_rng_state()}

    def fit(self) -> TrainResult:
        try:
            return self._fit()
        finally:
            self.adapter.close()

    def _fit(self) -> TrainResult:
        cfg = self.cfg
        start, curve, best, base_valid, resumed = 0, [], None, None, 0
        ck = load_checkpoint(self.checkpoint_dir) if self.checkpoint_dir else None
        if ck is not None and ck.get("run_id") == self.run_id:
            self.adapter.load_state(ck["policy"])
            self.opt.load_state_dict(ck["opt"])
            torch.set_rng_state(ck["torch_rng"])
            start = resumed = ck["step"]
            curve = [CurvePoint(**c) for c in ck["curve"]]
            best, base_valid = ck["best"], ck["base_valid"]
        if base_valid is None:
            base_valid = self.validate(base=True)  # the base model is the bar to beat
            best = {"step": 0, "valid": base_valid, "policy": self.adapter.state()}
        for step in range(start + 1, cfg.steps + 1):
            point = self.step(step)
            if step % cfg.valid_every == 0 or step == cfg.steps:
                point.valid_acc = self.validate()
                if point.valid_acc > best["valid"]:
                    best = {"step": step, "valid": point.valid_acc, "policy": self.adapter.state()}
            curve.append(point)
            if self.on_log:
                self.on_log(point)
            if self.checkpoint_dir:
                save_checkpoint(self.checkpoint_dir, self._state(step, curve, best, base_valid))
            fault_injection_point("train-step")  # resume tests: a kill -9 right here must lose nothing
        final = None
        if cfg.method == "svf":
            final = SVFPolicy({n: int(t.shape[0]) for n, t in best["policy"].items()}, cfg.svf)
            final.load_raw_state(best["policy"])
        return TrainResult(run_id=self.run_id, policy=final, best_state=best["policy"], curve=curve,
                           best_step=best["step"],
                           best_valid=best["valid"], base_valid=base_valid, data_files=self.data_files,
                           resumed_from=resumed)
