"""PEFT adapters (LoRA, IA3, DoRA) applied to a loaded model: the baselines' weights (paper §4.1, Table 7).

How an adapter is built and injected, apart from how it is trained (`t2core/training/`): the
evaluation variants and the LoRA-PG policy apply adapters too. Stored adapters live under the
artifact kind `adapters`. `peft` is imported lazily (`pip install 't2[baselines]'`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from t2core.errors import T2Error
from t2core.models.registry import LoadedModel
from t2core.models.targets import FamilyTargets

KIND = "adapters"


def peft_module():
    """The `peft` package, or one error line saying how to install it."""
    try:
        import peft
    except ImportError as e:
        raise T2Error("the LoRA/IA3/DoRA baselines need `peft`: pip install 't2[baselines]'.") from e
    return peft


def peft_config(cfg, family: FamilyTargets):
    """The PEFT config of `cfg` (its `method`, and `rank`, `alpha`, `dropout`, `target_modules` for
    LoRA/DoRA; IA3 on the model family's IA3 modules)."""
    peft = peft_module()
    if cfg.method in ("lora", "dora"):
        return peft.LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                               target_modules=list(cfg.target_modules), use_dora=cfg.method == "dora",
                               task_type="CAUSAL_LM")
    return peft.IA3Config(target_modules=list(family.ia3), feedforward_modules=list(family.ia3_feedforward),
                          task_type="CAUSAL_LM")


@contextlib.contextmanager
def with_adapter(loaded: LoadedModel, path: Path | None = None, cfg=None) -> Iterator[LoadedModel]:
    """Inject a PEFT adapter (fresh from `cfg`, or saved at `path`) into the model; removed afterwards."""
    peft = peft_module()
    if path is not None:
        pm = peft.PeftModel.from_pretrained(loaded.model, str(path), is_trainable=False)
    else:
        pm = peft.get_peft_model(loaded.model, peft_config(cfg, loaded.family))
    try:
        yield replace(loaded, model=pm)
    finally:
        pm.unload()  # back to the plain base modules, weights untouched
