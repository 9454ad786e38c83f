"""Each run's peak memory, measured where it runs and recorded as a metric (issue 43)."""

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


def test_an_evaluation_records_its_peak_as_a_metric(t2_home, data_dir):
    r = t2_inproc("eval", "--model", "tiny-random", "--task", "arc_easy", "--limit", "2", "--max-new-tokens", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = catalog_rows(t2_home, "SELECT name, value FROM metrics WHERE name LIKE 'peak_host_mb%'")
    assert len(rows) == 1 and rows[0][1] > 50  # an interpreter with torch is more than 50 MB
