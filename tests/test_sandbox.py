"""The code sandbox must pass good code, fail bad code, and contain hostile code."""

import os
import tempfile
import uuid

from t2core.sandbox import SandboxLimits, run_code

FAST = SandboxLimits(timeout_s=3, cpu_s=3)


def test_passes_and_fails():
    assert run_code("def f(x):\n    return x + 1\nassert f(1) == 2", FAST).passed
    res = run_code("def f(x):\n    return x\nassert f(1) == 2", FAST)
    assert not res.passed and res.status == "failed" and "AssertionError" in res.detail


def test_early_exit_cannot_fake_success():
    assert not run_code("import sys\nsys.exit(0)\nassert False", FAST).passed
    assert not run_code("import os\nos._exit(0)\nassert False", FAST).passed


def test_infinite_loop_is_killed():
    res = run_code("while True:\n    pass", SandboxLimits(timeout_s=2, cpu_s=10))
    assert not res.passed and res.status == "timeout"


def test_memory_limit():
    res = run_code("x = bytearray(8 * 1024**3)", SandboxLimits(timeout_s=5, memory_mb=512))
    assert not res.passed


def test_cannot_write_or_delete_outside_workdir(tmp_path):
    target = tmp_path / f"pwned-{uuid.uuid4().hex}"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    for prog in (
        f"open({str(target)!r}, 'w').write('x')",
        f"import os\nos.remove({str(victim)!r})",
        f"import shutil\nshutil.rmtree({str(tmp_path)!r})",
        f"import os\nos.chdir('/')\nopen({str(target).lstrip('/')!r}, 'w').write('x')",
        f"import subprocess\nsubprocess.run(['touch', {str(target)!r}])",
        f"import os\nos.system('touch {target}')",
    ):
        res = run_code(prog, FAST)
        assert not res.passed, prog
    assert not target.exists()
    assert victim.read_text() == "keep me"


def test_no_network_and_no_ctypes():
    assert not run_code("import socket\nsocket.create_connection(('127.0.0.1', 9))", FAST).passed
    assert not run_code("import ctypes\nctypes.CDLL(None)", FAST).passed


def test_workdir_is_writable_and_cleaned():
    def sandboxes():
        return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("t2-sandbox-")}

    before = sandboxes()
    prog = "open('scratch.txt', 'w').write('hi')\nassert open('scratch.txt').read() == 'hi'"
    assert run_code(prog, FAST).passed
    assert run_code("while True:\n    open('big', 'a').write('x' * 1000)", SandboxLimits(timeout_s=2, file_mb=1)).status != "passed"
    assert sandboxes() == before  # work dirs removed, even after a killed run
