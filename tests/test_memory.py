"""Each run's peak memory, measured where it runs and recorded as a metric (issue 43)."""

import os
import sys

import pytest

from t2core.memory import peak_memory
from tests.conftest import catalog_rows, t2_inproc

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM and clear_refs are Linux's")


@linux
def test_the_peak_is_the_blocks_own_not_the_processes_so_far():
    with peak_memory() as big:
        block = bytearray(300 * 2**20)  # 300 MB touched
        block[::4096] = b"x" * len(block[::4096])
        del block
    with peak_memory() as small:
        pass
    assert "peak_host_mb" in big and big["peak_host_mb"] - small["peak_host_mb"] > 250
    # the floor is what the block found held: below its peak by at least what the block touched
    assert 0 < big["peak_floor_host_mb"] and big["peak_host_mb"] - big["peak_floor_host_mb"] > 250
    assert small["peak_floor_host_mb"] <= small["peak_host_mb"]


def test_an_evaluation_records_its_peak_as_a_metric(t2_home, data_dir):
    r = t2_inproc("eval", "--model", "tiny-random", "--task", "arc_easy", "--limit", "2", "--max-new-tokens", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = catalog_rows(t2_home, "SELECT name, value FROM metrics WHERE name LIKE 'peak_host_mb%'")
    assert len(rows) == 1 and rows[0][1] > 50  # an interpreter with torch is more than 50 MB


def test_release_freed_hands_freed_heap_back():
    """Many small freed blocks stay in glibc's heap (RSS stays up) until malloc_trim gives them back."""
    import re
    from pathlib import Path

    from t2core.memory import release_freed

    def rss_mb() -> float:
        return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024

    blocks = [bytearray(64 * 1024) for _ in range(8000)]  # ~500 MB in blocks below the mmap threshold
    keep = blocks[-1]  # the heap's top stays in use, so freeing the rest cannot shrink it from the end
    before = rss_mb()
    del blocks
    if not release_freed():
        import pytest

        pytest.skip("no glibc malloc_trim here")
    assert rss_mb() < before - 300, (before, rss_mb())
    del keep


def test_the_kernel_caches_are_capped_unless_the_user_set_them(monkeypatch):
    from t2core.memory import KERNEL_CACHE_ENVS, bound_kernel_cache

    onednn, ideep = KERNEL_CACHE_ENVS
    monkeypatch.delenv(onednn, raising=False)
    monkeypatch.setenv(ideep, "512")
    assert bound_kernel_cache() == {onednn: "64", ideep: "512"}
    assert os.environ[onednn] == "64" and os.environ[ideep] == "512"


def test_loading_a_model_caps_the_kernel_caches(monkeypatch):
    from t2core.memory import KERNEL_CACHE_ENVS
    from t2core.models import load_model

    for env in KERNEL_CACHE_ENVS:
        monkeypatch.delenv(env, raising=False)
    load_model("tiny-random")
    assert all(os.environ[env] == "64" for env in KERNEL_CACHE_ENVS)
