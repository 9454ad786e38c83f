"""Process-wide state for the Prefect flows: loaded models are cached per process, so
the flow's tasks share one copy; and a fault-injection point for the resume tests."""

from __future__ import annotations

import os
import threading

from t2core.models import LoadedModel, load_model

_MODELS: dict[tuple[str, int], LoadedModel] = {}
_LOCK = threading.Lock()


def get_model(name: str, seed: int = 0) -> LoadedModel:
    with _LOCK:
        key = (name, seed)
        if key not in _MODELS:
            _MODELS.clear()  # one model at a time: memory matters more than reloads
            _MODELS[key] = load_model(name, seed=seed)
        return _MODELS[key]


def fault_injection_point(counter_name: str) -> None:
    """Crash the process (like a kill -9) after N passes, when T2_FAULT_AFTER=<name>:<N> is set.

    Used by the resume tests to interrupt a flow deterministically between tasks.
    """
    spec = os.environ.get("T2_FAULT_AFTER", "")
    if not spec.startswith(counter_name + ":"):
        return
    with _LOCK:
        n = _FAULT_COUNTS.get(counter_name, 0) + 1
        _FAULT_COUNTS[counter_name] = n
    if n >= int(spec.split(":", 1)[1]):
        os._exit(137)


_FAULT_COUNTS: dict[str, int] = {}
