"""The PEFT baselines trained by next-token prediction: LoRA-NTP (paper §4.1), IA3 and DoRA (Table 7).

The adapter is built and injected by `t2core/adapters.py`; the loop is `ntp.ntp_steps`; the result
is stored in PEFT's format under the artifact kind `adapters`, keyed by its content id.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from t2core.adapters import KIND, with_adapter
from t2core.artifacts import ArtifactStore
from t2core.methods import method_of
from t2core.models.registry import LoadedModel
from t2core.tasks import get_task
from t2core.tasks.base import Dataset
from t2core.training.ntp import PEFT, NTPConfig, NTPResult, ntp_steps, register_ntp_trainer


def train_peft_ntp(loaded: LoadedModel, cfg: NTPConfig, ds: Dataset, aid: str, store: ArtifactStore,
                   on_log: Callable[[int, float], None] | None = None) -> NTPResult:
    """Train (or reuse, by content key `aid`) a PEFT adapter of `cfg.method` by next-token prediction."""
    task = get_task(cfg.task)
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
            return {"method": method_of("ntp", cfg.method).product, "task": cfg.task, "n_trainable": n_trainable}

        store.write(KIND, aid, write, meta={"weights_hash": loaded.weights_hash, "config": asdict(cfg)})
    return NTPResult(aid, store.path(KIND, aid), losses, n_trainable, time.perf_counter() - t0, ds.files)


register_ntp_trainer(PEFT, train_peft_ntp)  # every method whose file gives `peft=` (lora, ia3, dora, ...)
