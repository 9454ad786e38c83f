"""Benchmarks. Importing this package registers the built-in tasks: every module in this folder is
imported (`import_submodules`), so a new task is one file with one `register_task` call."""

from pathlib import Path

from t2core.paths import resolve_data_dir
from t2core.registry import import_submodules
from t2core.tasks.base import (
    ChoiceSample,
    CodeSample,
    Dataset,
    MathSample,
    Score,
    Task,
    get_task,
    register_task,
    task_names,
)

import_submodules(__name__, __path__)


def load_split(task: str, split: str, data_dir: str | Path | None = None, limit: int | None = None) -> Dataset:
    """Load `task`/`split` from the local data dir (or the hub when there is none), first `limit` samples."""
    return get_task(task).load(split, resolve_data_dir(data_dir)).limit(limit)


__all__ = [
    "ChoiceSample", "CodeSample", "Dataset", "MathSample", "Score", "Task", "get_task", "load_split",
    "register_task", "task_names",
]
