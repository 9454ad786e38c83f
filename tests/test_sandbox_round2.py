"""The sandbox's second round (issue 20), one hostile program of our own per mechanism:
- text from the candidate is valid UTF-8, printable and bounded once it reaches the trusted side,
  and survives `t2 eval`'s whole path (verdict -> catalog -> `t2 catalog ls samples` -> report);
- memory the rlimits do not count (tmpfs, memfd, kernel inodes) is counted by a memory cgroup, a
  sandbox's processes by a pids cgroup, and /dev is read-only;
- the judge takes only plain data, at a bounded decoding cost, imports nothing the candidate names,
  and no candidate exception is control flow in it.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import pytest

from t2core.safe_text import printable, storable
from t2core.sandbox import SandboxLimits, TestSpec, cgroups, inside, isolation, run_tests
from t2core.sandbox.wire import WireError, decode, encode

FAST = SandboxLimits(timeout_s=6, cpu_s=4)
SPEC = TestSpec("assert add(1, 2) == 3")
GOOD = "def add(a, b):\n    return a + b\n"
# what a program can put in an exception's message: a lone surrogate, terminal escapes, a carriage
# return, a bidirectional override, rich markup, NUL, and far more than anyone would print
HOSTILE_TEXT = ("'\\ud800 \\x1b[2J\\x1b[31mred\\x1b]0;title\\x07 \\r over \\u202egnp.exe [/] [bold]b[/bold] \\x00 "
                "\\udfff' + 'A' * 20000")


@pytest.fixture(scope="module", autouse=True)
def isolated():
    assert isolation().isolated


def _unsafe(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 32 and c not in "\t\n") or 0x7f <= ord(c) <= 0x9f
            or 0xd800 <= ord(c) <= 0xdfff or c in "\u202e\u2028\ufeff"]


# --------------------------------------------------------------------------- hostile text


def test_printable_escapes_what_a_terminal_or_utf8_cannot_take():
    raw = eval(HOSTILE_TEXT)  # noqa: S307 - our own literal
    out = printable(raw, 500)
    assert len(out) <= 500 and _unsafe(out) == [] and out.encode("utf-8")
    assert out.startswith("\\ud800 \\x1b[2J\\x1b[31mred") and "\\u202e" in out and out.endswith("…")
    assert printable("plain\ttext\nline é ✓") == "plain\ttext\nline é ✓"  # the rest is left as it is
    assert storable("a\ud800b\x1b") == "a\\ud800b\x1b" and storable(None) is None


def test_hostile_text_in_an_exception_reaches_the_verdict_printable_and_bounded():
    res = run_tests(f"def add(a, b):\n    raise ValueError({HOSTILE_TEXT})\n", SPEC, FAST)
    assert not res.passed and res.detail.startswith("ValueError: \\ud800 \\x1b[2J")
    assert len(res.detail) <= 500 and _unsafe(res.detail) == [] and res.detail.encode("utf-8")
    lone = run_tests("def add(a, b):\n    return 3\nassert False, '\\udcff\\x1b'\n", SPEC, FAST)
    assert not lone.passed and _unsafe(lone.detail) == [], lone


def _hostile_answer(conversation) -> str:
    """A "model" whose every MBPP answer is a program raising hostile text, and whose own text holds
    raw escapes, markup and a lone surrogate."""
    return (f"\x1b[31m[/] [bold]\ud800 here:\n```python\ndef f(*a):\n    raise ValueError({HOSTILE_TEXT})\n"
            "raise KeyError('\\x1b[2J\\ud800')\n```\n")


def test_hostile_text_through_t2_evals_whole_path(t2_home, data_dir):
    from t2core.sampling import register_sampler
    from t2core.sampling.dummy import DummySampler
    from tests.conftest import catalog_rows, t2_inproc

    try:
        register_sampler("hostile-text", lambda **kw: DummySampler(respond=_hostile_answer))
    except Exception:  # noqa: BLE001 - registered by an earlier run of this test in this process
        pass
    r = t2_inproc("eval", "--model", "tiny-random", "--task", "mbpp", "--limit", "3", "--sampler", "hostile-text",
                  "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "accuracy 0.0000 (0/3)" in r.stdout
    rows = catalog_rows(t2_home, "SELECT output, detail, correct FROM samples")
    assert len(rows) == 3 and not any(c for *_, c in rows)
    for output, detail, _ in rows:
        assert output.startswith("\x1b[31m[/] [bold]\\ud800 here")  # stored as it came, surrogate escaped
        assert "\\ud800" in detail and len(detail) <= 500 and _unsafe(detail) == []
    ls = t2_inproc("catalog", "ls", "samples")
    assert ls.returncode == 0, ls.stdout + ls.stderr
    assert "\\x1b[31m[/]" in ls.stdout and "\x1b" not in ls.stdout, ls.stdout  # shown, not interpreted
    rep = t2_inproc("report", "--table", "1", "--model", "tiny-random", "--profile", "tiny")
    assert rep.returncode == 0, rep.stdout + rep.stderr


# --------------------------------------------------------------------------- memory outside the rlimits


def test_dev_is_read_only_and_dev_shm_is_a_capped_tmpfs():
    prog = ("import os\nout = []\nfor path, n in (('/dev/fill', 1 << 20), ('/dev/shm/fill', 64 << 20)):\n"
            "    try:\n        with open(path, 'wb') as f:\n            f.write(b'x' * n)\n        out.append('wrote')\n"
            "    except OSError as e:\n        out.append(e.errno)\nwith open('/dev/null', 'w') as f:\n    f.write('ok')\n"
            "def add(a, b):\n    return out\n")
    res = run_tests(prog, TestSpec("import errno\nassert add(1, 2) == [errno.EROFS, errno.ENOSPC], add(1, 2)"),
                    SandboxLimits(timeout_s=6, cpu_s=4, tmpfs_mb=8, file_mb=128))
    assert res.passed, res


def _needs_cgroups():
    h, why = cgroups.hierarchy()
    if h is None:
        pytest.skip(f"no cgroups for sandboxes on this machine: {why}")
    return h


def _left_over(h) -> set[str]:
    return {c.name for d in {h.memory, h.pids} for c in d.iterdir() if c.is_dir()
            and c.name.startswith(f"{os.getpid()}-")}


@pytest.mark.parametrize("what, prog", [
    ("memfds kept open past their mapping", "import os, mmap\nkeep = []\nfor i in range(40):\n"
     "    fd = os.memfd_create('m')\n    os.ftruncate(fd, 8 << 20)\n    m = mmap.mmap(fd, 8 << 20)\n"
     "    m.write(b'x' * (8 << 20))\n    m.close()\n    keep.append(fd)\n"),
    ("empty files in a tmpfs (kernel memory)", "for i in range(400000):\n    open(f'/tmp/{i}', 'w').close()\n"),
])
def test_a_memory_cgroup_counts_tmpfs_memfd_and_inodes(what, prog):
    """Each of these holds memory the 1 GiB address-space rlimit never sees; the cgroup's limit
    (memory_mb) counts it, the kernel kills the candidate, and its cgroups are removed afterwards."""
    h = _needs_cgroups()
    before = _left_over(h)
    t0 = time.monotonic()
    res = run_tests(prog + "def add(a, b):\n    return a + b\n", SPEC,
                    SandboxLimits(timeout_s=20, cpu_s=15, memory_mb=192, tmpfs_mb=512, nofile=64))
    assert not res.passed and "memory cgroup's limit was hit" in res.detail, (what, res)
    assert time.monotonic() - t0 < 20
    assert run_tests(GOOD, SPEC, FAST).passed
    cgroups._retry_pending((0, 0.1, 0.5, 1, 2))  # what t2 does at exit: the busy ones, waiting for their teardown
    assert _left_over(h) == before
    # without the cgroup the same program is held by nothing but the tmpfs size: it loads and passes
    if what.startswith("memfds"):
        assert run_tests(prog + GOOD, SPEC, SandboxLimits(timeout_s=20, cpu_s=15, memory_mb=192, cgroups=False)).passed


def test_a_pids_cgroup_bounds_each_sandbox():
    h = _needs_cgroups()
    prog = ("import os, time\nn = 0\ntry:\n    for i in range(64):\n        if os.fork() == 0:\n"
            "            time.sleep(3)\n            os._exit(0)\n        n += 1\nexcept OSError:\n    pass\n"
            "def add(a, b):\n    return n\n")
    # RLIMIT_NPROC (per uid) and the pids cgroup (per sandbox) both stop the fork loop below `nproc`
    res = run_tests(prog, TestSpec("n = add(1, 2)\nassert 0 < n < 8, n"), SandboxLimits(timeout_s=8, nproc=8))
    assert res.passed, res
    mine = [c for c in h.pids.iterdir() if c.is_dir() and c.name.startswith(f"{os.getpid()}-")]
    assert mine == []  # removed once reaped


@pytest.mark.parametrize("how", ["launch", "wrap"])
def test_a_sandbox_process_is_inside_its_cgroups_from_the_start_and_the_caller_is_not(how):
    """`launch` (v1: the calling thread steps in, forks, steps back) and `wrap` (the `sh` that joins,
    used on v2) both start the process inside both cgroups; the caller's thread ends where it began."""
    import subprocess

    h = _needs_cgroups()
    if how == "launch" and h.version != "v1":
        pytest.skip("launch steps a thread in only on cgroup v1; v2 uses wrap")
    home = Path("/proc/thread-self/cgroup").read_text()
    cg = cgroups.Cgroup.make(h, 64, 8)

    def start(cmd):
        return subprocess.Popen(cmd, stdout=subprocess.PIPE)

    cmd = ["/bin/cat", "/proc/self/cgroup"]  # the child's own cgroups, as it sees them at once
    p = cg.launch(cmd, start) if how == "launch" else start(cg.wrap(cmd))
    seen = p.communicate()[0].decode()
    assert Path("/proc/thread-self/cgroup").read_text() == home
    inside = f"/{cgroups.PARENT}/{cg.dirs[0].name}"
    ctrls = {line.split(":")[1] for line in seen.splitlines() if line.endswith(inside)}
    assert ({"memory", "pids"} <= ctrls) if h.version == "v1" else ctrls == {""}, seen
    cg.remove()
    cgroups._retry_pending((0, 0.1, 0.5))
    assert not any(d.exists() for d in cg.dirs)


def test_without_cgroups_it_says_so_once_and_require_refuses(monkeypatch, capsys):
    from t2core.sandbox.isolate import SandboxUnavailable, sandbox_cgroup

    monkeypatch.setattr(cgroups, "hierarchy", lambda: (None, "no memory and pids cgroup controllers are mounted"))
    cgroups.warn_missing.cache_clear()
    assert sandbox_cgroup(SandboxLimits()) is None and sandbox_cgroup(SandboxLimits()) is None
    err = capsys.readouterr().err
    assert err.count("t2 sandbox: no memory/pids cgroup (no memory and pids cgroup controllers") == 1
    assert run_tests(GOOD, SPEC, FAST).passed  # rlimits and tmpfs sizes still hold
    monkeypatch.setenv(cgroups.ENV, "require")
    with pytest.raises(SandboxUnavailable, match="T2_SANDBOX_CGROUP=require.*Fix:"):
        sandbox_cgroup(SandboxLimits())
    cgroups.warn_missing.cache_clear()


# --------------------------------------------------------------------------- a judge the candidate steers


class _StubChannel:
    def __init__(self, replies: dict) -> None:
        self.replies, self.broken = replies, ""

    def ask(self, msg):
        return self.replies[msg[1]]


def test_the_judge_imports_only_stdlib_modules_the_tests_name():
    ns: dict = {}
    inside._bind(_StubChannel({"math": ("module",), "helpers": ("module",), "evil": ("module", "antigravity"),
                               "x": ("value", [1])}), ns, ["math", "helpers", "evil", "x"])
    assert ns == {"math": __import__("math"), "x": [1]}  # "helpers" is no stdlib module; "evil" names its own


def test_a_fake_module_gets_the_tests_module_not_the_one_it_names():
    prog = "import types\nmath = types.ModuleType('antigravity')\ndef add(a, b):\n    return a + b\n"
    assert run_tests(prog, TestSpec("assert math.sqrt(add(2, 2)) == 2"), FAST).passed


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def _colliding_ints(n: int) -> bytes:
    out = bytearray(b"e" + struct.pack(">I", n))
    for k in range(1, n + 1):  # k * (2**61 - 1): all hash to 0
        h = format(k * (2 ** 61 - 1), "x").encode()
        out += b"i" + struct.pack(">I", len(h)) + h
    return bytes(out)


def test_decoding_cost_is_bounded_by_count_size_and_collisions():
    t0 = time.monotonic()
    with pytest.raises(WireError, match="share a hash"):
        decode(_colliding_ints(200_000))  # O(n²) to build: ~minutes
    with pytest.raises(WireError, match="objects"):
        decode(b"l" + struct.pack(">I", 3_000_000) + b"e\x00\x00\x00\x00" * 3_000_000)  # 650 MB of empty sets
    with pytest.raises(WireError, match="share a hash"):
        decode(_colliding_dict())  # dict keys too
    assert time.monotonic() - t0 < 5
    assert decode(encode({i: str(i) for i in range(1000)})) == {i: str(i) for i in range(1000)}  # plain data still


def _colliding_dict() -> bytes:
    out = bytearray(b"m" + struct.pack(">I", 20))
    for k in range(1, 21):
        h = format(k * (2 ** 61 - 1), "x").encode()
        out += b"i" + struct.pack(">I", len(h)) + h + b"n"
    return bytes(out)


HANDCRAFTED_REPLY = """
import os, sys, time
sys.path.insert(0, "/t2sandbox")
import inside
req, rep = int(sys.argv[-2]), int(sys.argv[-1])
inside.send(rep, ("loaded",))
while True:
    msg = inside.recv(req)
    if msg is None:
        os._exit(0)
    if msg[0] == "describe":
        inside.send(rep, ("callable",))
    else:
        os.write(rep, REPLY)
        time.sleep(30)
"""


@pytest.mark.parametrize("what, body", [
    ("a set of ints with equal hashes", b"u\x00\x00\x00\x02" + encode("ok") + _colliding_ints(150_000)),
    ("millions of empty sets", b"u\x00\x00\x00\x02" + encode("ok") + b"l" + struct.pack(">I", 3_000_000)
     + b"e\x00\x00\x00\x00" * 3_000_000),
])
def test_a_handcrafted_reply_fails_fast(what, body):
    prog = f"REPLY = {_frame(body)!r}\n" + HANDCRAFTED_REPLY
    t0 = time.monotonic()
    res = run_tests(prog, SPEC, SandboxLimits(timeout_s=10, cpu_s=8))
    assert not res.passed and res.status == "failed" and "bad reply to add" in res.detail, (what, res)
    assert time.monotonic() - t0 < 5, (what, time.monotonic() - t0)


def test_a_memory_error_while_reading_a_reply_marks_the_channel(monkeypatch):
    r, w = os.pipe()
    try:
        chan = inside._Channel(w, r)

        def boom(fd):
            raise MemoryError

        monkeypatch.setattr(inside, "recv", boom)
        with pytest.raises(inside.CandidateBroken, match="MemoryError"):
            chan.ask(("call", "add", (1, 2), {}))
        assert chan.broken.startswith("bad reply to add: MemoryError")
        with pytest.raises(inside.CandidateBroken):  # and stays broken: a test's `except` cannot undo it
            chan.ask(("call", "add", (1, 2), {}))
    finally:
        os.close(r)
        os.close(w)
