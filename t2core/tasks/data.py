"""Reading dataset files with provenance, and the Hugging Face hub fallback.

Local files come from the data directory (`T2_DATA_DIR`, default `../shared/datasets`,
layout documented in its README). Each read records the file's sha256. Errors name the
file and line and say what was expected. With no local directory, loaders fall back to
the hub ids via the optional `datasets` package (`pip install t2[hub]`).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from t2core.errors import DataError
from t2core.hashing import canonical_json, sha256_bytes, sha256_file
from t2core.tasks.pins import PINNED


def data_file(data_dir: Path, rel: str) -> Path:
    path = data_dir / rel
    if not path.is_file():
        raise DataError(
            f"dataset file {path} is missing; the data directory {data_dir} should hold {rel} "
            "(layout in shared/datasets/README.md). Set T2_DATA_DIR to a complete copy."
        )
    return path


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) from a .jsonl or .jsonl.gz file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg}); expected one JSON object per line.") from e
                if not isinstance(rec, dict):
                    raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}.")
                yield lineno, rec
    except (OSError, EOFError, UnicodeDecodeError) as e:
        if isinstance(e, FileNotFoundError):
            raise DataError(f"dataset file {path} is missing.") from e
        raise DataError(f"{path}: cannot be read as {'gzip ' if path.suffix == '.gz' else ''}UTF-8 JSONL ({e}).") from e


def read_json_array(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); expected a JSON array of objects.") from e
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of objects, got {type(data).__name__}.")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise DataError(f"{path}: element {i} is {type(rec).__name__}, expected an object.")
        yield i, rec


def require(rec: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in rec]
    if missing:
        raise DataError(f"{where}: record lacks field(s) {missing}; expected fields {list(keys)}.")


def file_hashes(paths: list[Path]) -> dict[str, str]:
    return {str(p): sha256_file(p) for p in paths}


def hub_records(hub_id: str, config: str | None, split: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Rows of a hub dataset split, with a content hash standing in for the file hash."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise DataError(
            f"no local data directory and the hub is disabled (HF_HUB_OFFLINE), so {hub_id} cannot be read; "
            "set T2_DATA_DIR to a folder laid out like shared/datasets."
        )
    try:
        import datasets  # lazy: optional extra
    except ImportError as e:
        raise DataError(
            f"no local data directory was found (set T2_DATA_DIR) and the hub fallback for {hub_id} needs the "
            "`datasets` package: pip install 't2[hub]'."
        ) from e
    ds = datasets.load_dataset(hub_id, config, split=split)
    rows = [dict(r) for r in ds]
    digest = sha256_bytes(canonical_json(rows).encode())
    return rows, {f"hub:{hub_id}/{config or ''}/{split}": digest}


def parse_records(
    records: Iterator[tuple[int, dict[str, Any]]], where: str, parse: Callable[[dict[str, Any], str], Any]
) -> list[Any]:
    """Apply `parse(record, location)` to every record, naming file:line in errors."""
    out = []
    for lineno, rec in records:
        loc = f"{where}:{lineno}"
        try:
            out.append(parse(rec, loc))
        except DataError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise DataError(f"{loc}: malformed record ({type(e).__name__}: {e}).") from e
    if not out:
        raise DataError(f"{where}: no records found; the file is empty.")
    return out


def load_samples(
    data_dir: Path | None,
    rel: str,
    parse: Callable[[dict[str, Any], str], Any],
    hub: list[tuple[str, str | None, str]],
) -> tuple[list[Any], dict[str, str]]:
    """Parsed samples and {file: sha256} from `data_dir/rel`, or, with no data dir, from the hub.

    `rel` ending in `.json` is a JSON array, anything else JSONL (optionally gzipped).
    `hub` lists the (dataset id, config, split) parts whose rows together hold the same records.
    """
    if data_dir is None:
        if not hub:
            raise DataError(f"no local data directory was found for {rel} (set T2_DATA_DIR to a folder laid out "
                            "like shared/datasets, or pass --data-dir) and it has no hub source to fall back to.")
        rows: list[dict[str, Any]] = []
        files: dict[str, str] = {}
        for hub_id, config, split in hub:
            r, f = hub_records(hub_id, config, split)
            rows += r
            files |= f
        return parse_records(enumerate(rows), f"hub:{hub[0][0]}", parse), files
    path = data_file(data_dir, rel)
    reader = read_json_array if path.suffix == ".json" else read_jsonl
    samples, files = parse_records(reader(path), str(path), parse), file_hashes([path])
    pinned = PINNED.get(rel)
    if pinned is not None and files[str(path)] != pinned:
        raise DataError(f"{path} has sha256 {files[str(path)][:16]}…, not the pinned {pinned[:16]}… "
                        "(shared/datasets/README.md; t2core/tasks/pins.py): the file is damaged or another "
                        "revision. Restore the verified copy.")
    return samples, files
