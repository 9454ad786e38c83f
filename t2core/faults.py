"""Deterministic crash points for the resume tests: `T2_FAULT_AFTER=<name>:<N>` makes the
process exit abruptly (status 137, like `kill -9`: no cleanup, no `finally`) the N-th time
the point `<name>` is passed. Unset (always, outside tests) it does nothing.

Points: `eval` (after each evaluation of the full-paper flow), `train-step` (after each
REINFORCE step's checkpoint is written), `train-stored` (after a trained expert is stored, before
its catalog record), `cem-generation` (after each few-shot search
generation's checkpoint is written).
"""

from __future__ import annotations

import os
import threading

_COUNTS: dict[str, int] = {}
_LOCK = threading.Lock()


def fault_injection_point(name: str) -> None:
    spec = os.environ.get("T2_FAULT_AFTER", "")
    if not spec.startswith(name + ":"):
        return
    with _LOCK:
        n = _COUNTS[name] = _COUNTS.get(name, 0) + 1
    if n >= int(spec.split(":", 1)[1]):
        os._exit(137)
