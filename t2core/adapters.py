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

from t2core.methods.base import peft_module
from t2core.models.registry import LoadedModel
from t2core.models.targets import FamilyTargets

KIND = "adapters"


def peft_config(cfg, family: FamilyTargets):
    """The PEFT config of `cfg`, built by the method its `method` selects (t2core/methods/): one line
    naming the known ones for a name that selects none, and for a method that is not PEFT."""
    from t2core.errors import ConfigError
    from t2core.methods import method_of

    m = method_of("ntp", cfg.method)
    if m.peft is None:
        raise ConfigError(f"method {m.name!r} makes {m.product} experts, not a PEFT adapter; a PEFT method is one "
                          "whose file gives `peft=` (lora, dora, ia3).")
    return m.peft(cfg, family)


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
