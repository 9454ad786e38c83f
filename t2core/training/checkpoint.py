"""Resumable training state: written atomically after every step that should survive a crash.

A checkpoint directory holds `state.pt` (policy parameters, Adam state, step, learning
curve, best-validation record, RNG state) and is replaced with one rename, so a kill at
any moment leaves either the previous or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from t2core.errors import ArtifactError

STATE = "state.pt"


def save_checkpoint(directory: Path, state: dict[str, Any]) -> None:
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        torch.save(state, tmp / STATE)
        old = directory.with_name(directory.name + ".old")
        if directory.exists():
            os.rename(directory, old)
        os.rename(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_checkpoint(directory: Path) -> dict[str, Any] | None:
    directory = Path(directory)
    path = directory / STATE
    if not path.is_file():
        old = directory.with_name(directory.name + ".old") / STATE  # crash between the two renames
        if not old.is_file():
            return None
        path = old
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise ArtifactError(f"checkpoint {path} cannot be read ({e}); delete {directory} to restart training.") from e
