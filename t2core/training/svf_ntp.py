"""SVF trained by next-token prediction on reference solutions (paper Table 4, "SVF-NTP").

The paper's ablation asks whether SVF's gains come from the parameterisation or from RL: the same
z vectors (paper §3.2, W' = U diag(s ⊙ z) Vᵀ) trained like the LoRA-NTP baseline, by the
cross-entropy of the reference answer tokens (the batches of `ntp.ntp_batch`), with Adam.
The result is an ordinary SVF expert (content id, verified file) whose header records the NTP config.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict

import torch

from t2core.artifacts import ArtifactStore
from t2core.experts import KIND, run_expert, store_expert
from t2core.models.registry import LoadedModel
from t2core.svf.apply import attached
from t2core.svf.expert import ExpertHeader
from t2core.svf.placement import place_policy, resident_svd
from t2core.svf.policy import SVFConfig, SVFPolicy
from t2core.tasks import get_task
from t2core.tasks.base import Dataset
from t2core.training.ntp import NTPConfig, NTPResult, ntp_steps, register_ntp_trainer


def train_svf_ntp(loaded: LoadedModel, cfg: NTPConfig, ds: Dataset, aid: str, store: ArtifactStore,
                  on_log: Callable[[int, float], None] | None = None) -> NTPResult:
    """Train (or reuse, by content key `aid`) an SVF expert by next-token prediction."""
    if store.exists(KIND, aid):  # content-addressed: same weights, config and data -> same expert
        ref = run_expert(store, aid)
        return NTPResult(aid, ref.path, [], sum(ref.header.ranks.values()), 0.0, ds.files, True, ref.id)
    task = get_task(cfg.task)
    svf_cfg = SVFConfig(targets=cfg.svf_targets)
    svd = resident_svd(loaded, cfg.svf_targets, store=store)  # on the model's devices, once per load
    policy = place_policy(SVFPolicy({n: int(s.shape[0]) for n, (_, s, _) in svd.items()}, svf_cfg, seed=cfg.seed),
                          loaded.model)  # before the optimizer is built over its parameters
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    t0 = time.perf_counter()
    with attached(loaded.model, svd, policy) as model:  # z stays fp32 under autocast
        losses = ntp_steps(model, loaded.tokenizer, task, ds, cfg, opt, random.Random(cfg.seed), on_log)
    seconds = time.perf_counter() - t0
    header = ExpertHeader(base_weights_hash=loaded.weights_hash, model=loaded.alias, task=cfg.task, svf=asdict(svf_cfg),
                          ranks={n: int(s.shape[0]) for n, (_, s, _) in svd.items()}, data_files=ds.files,
                          config={"ntp": asdict(cfg)},
                          metrics={"first_loss": losses[0], "final_loss": losses[-1]} if losses else {},
                          origin="svf-ntp")

    ref = store_expert(store, aid, policy.cpu(), header, meta={
        "weights_hash": loaded.weights_hash, "config": asdict(cfg), "method": "svf", "task": cfg.task,
        "n_trainable": policy.n_params})
    return NTPResult(aid, ref.path, losses, policy.n_params, seconds, ds.files, False, ref.id)


register_ntp_trainer("svf", train_svf_ntp)
