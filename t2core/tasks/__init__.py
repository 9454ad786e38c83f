"""Benchmarks. Importing this package registers the built-in tasks."""

from pathlib import Path

from t2core.paths import resolve_data_dir
from t2core.tasks import arc, arc_cloze, code, dispatch, gsm8k, math  # noqa: F401 - registration side effects
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


def load_split(task: str, split: str, data_dir: str | Path | None = None, limit: int | None = None) -> Dataset:
    """Load `task`/`split` from the local data dir (or the hub when there is none), first `limit` samples."""
    return get_task(task).load(split, resolve_data_dir(data_dir)).limit(limit)


__all__ = [
    "ChoiceSample", "CodeSample", "Dataset", "MathSample", "Score", "Task", "get_task", "load_split",
    "register_task", "task_names",
]
