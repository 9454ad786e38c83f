"""A process that writes one artifact (tests/test_scaleout.py: two workers producing the same one at once)."""

import time
from pathlib import Path

from t2core.artifacts import ArtifactStore


def write_same(root: str, start_at: float) -> str:
    def writer(tmp: Path) -> dict:
        (tmp / "data.bin").write_bytes(b"the same content" * 1000)
        time.sleep(max(0.0, start_at - time.time()) + 0.3)  # both writers hold their files before either renames
        return {}

    return ArtifactStore(root).write("experts", "k1", writer).key
