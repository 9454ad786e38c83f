"""Content-addressed artifact store with atomic writes and verified reads.

Layout: `<root>/<kind>/<key>/` holds the artifact's files plus `manifest.json`
(sha256 of every file, size, free-form metadata). A directory without a manifest
is incomplete (a crash mid-write) and is never read. Writes go to a temp dir on
the same filesystem and are published with one `rename`, so readers see either
nothing or the whole artifact.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2core.errors import ArtifactError
from t2core.hashing import sha256_file
from t2core.paths import t2_home

MANIFEST = "manifest.json"


@dataclass
class Manifest:
    kind: str
    key: str
    files: dict[str, dict[str, Any]]  # name -> {"sha256": str, "bytes": int}
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(int(f["bytes"]) for f in self.files.values())


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file atomically (temp file in the same dir + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(dest: Path) -> Iterator[Path]:
    """Fill a temporary sibling of `dest`, then put it in `dest`'s place in one rename: readers see the
    old directory or the complete new one, never a half-written one; a failure leaves no temp behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            shutil.rmtree(dest)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class ArtifactStore:
    """Artifacts keyed by content hash under `T2_HOME/artifacts` (or an explicit root)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root else t2_home() / "artifacts"

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def exists(self, kind: str, key: str) -> bool:
        return (self.path(kind, key) / MANIFEST).is_file()

    def manifest(self, kind: str, key: str) -> Manifest:
        mpath = self.path(kind, key) / MANIFEST
        if not mpath.is_file():
            raise ArtifactError(f"no {kind} artifact with key {key!r} under {self.root}; create it first.")
        try:
            data = json.loads(mpath.read_text())
            return Manifest(**data)
        except (json.JSONDecodeError, TypeError) as e:
            raise ArtifactError(
                f"manifest {mpath} is corrupted ({e}); delete {mpath.parent} and rerun to rebuild it."
            ) from e

    def verify(self, kind: str, key: str) -> Manifest:
        """Re-hash every file against the manifest; raise ArtifactError naming the first mismatch."""
        man = self.manifest(kind, key)
        base = self.path(kind, key)
        for name, info in man.files.items():
            fpath = base / name
            if not fpath.is_file():
                raise ArtifactError(
                    f"{kind} artifact {key}: file {fpath} is missing; delete {base} and rerun to rebuild it."
                )
            got = sha256_file(fpath)
            if got != info["sha256"]:
                raise ArtifactError(
                    f"{kind} artifact {key}: file {fpath} is corrupted (sha256 {got[:12]}… but the manifest "
                    f"says {info['sha256'][:12]}…); delete {base} and rerun to rebuild it."
                )
        return man

    def write(
        self, kind: str, key: str, writer: Callable[[Path], dict[str, Any] | None], meta: dict | None = None
    ) -> Manifest:
        """Create an artifact: `writer(tmpdir)` writes files (and may return extra metadata).

        If another process published the same key meanwhile, its artifact wins (same content).
        """
        final = self.path(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
        try:
            extra = writer(tmp) or {}
            files = {
                p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                for p in sorted(tmp.iterdir())
                if p.is_file() and p.name != MANIFEST
            }
            man = Manifest(kind=kind, key=key, files=files, meta={**(meta or {}), **extra})
            (tmp / MANIFEST).write_text(json.dumps(man.__dict__, indent=1, sort_keys=True))
            if final.exists() and not (final / MANIFEST).is_file():
                shutil.rmtree(final)  # leftover of an interrupted write: not a valid artifact
            try:
                os.rename(tmp, final)
            except OSError:
                if (final / MANIFEST).is_file():  # lost a race to an identical writer
                    shutil.rmtree(tmp, ignore_errors=True)
                    return self.manifest(kind, key)
                raise
            return man
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
