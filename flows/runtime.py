"""Process-wide state for the Prefect flows: loaded models are cached per process, so
the flow's tasks share one copy."""

from __future__ import annotations

import threading

from t2core import threads
from t2core.models import LoadedModel, load_model
from t2core.precision import announce
from t2core.svf.placement import set_factor_dtype

_MODELS: dict[tuple[str, int], LoadedModel] = {}
_LOCK = threading.Lock()


def get_model(name: str, seed: int = 0, factor_dtype: str = "float32") -> LoadedModel:
    """The process's model `name`, its SVD factors kept in `factor_dtype` (the profile's)."""
    threads.configure()  # a flow run by a deployment's process starts here, not through the CLI
    announce()  # the dtype "auto" chose, once, into the flow's log
    with _LOCK:
        key = (name, seed)
        if key not in _MODELS:
            _MODELS.clear()  # one model at a time: memory matters more than reloads
            _MODELS[key] = load_model(name, seed=seed)
        loaded = _MODELS[key]
        set_factor_dtype(loaded, factor_dtype)
        return loaded
