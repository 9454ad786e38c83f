"""The code sandbox: honest programs pass, wrong ones fail, hostile ones are contained.

Every hostile program below was written against `t2core/sandbox/` after reading it. Each one
must be judged not passed, write nothing outside, leave no process, leave the caller healthy
(no leaked descriptor, bounded memory), and the next correct candidate must still pass.
"""

from __future__ import annotations

import os
import socket
import stat
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from t2core.sandbox import SandboxLimits, TestSpec, isolation, run_many, run_tests
from t2core.sandbox.isolate import DEFAULT_HOST_UID
from t2core.sandbox.wire import WireError, decode, encode
from tests.hostile_programs import HOSTILE

FAST = SandboxLimits(timeout_s=4, cpu_s=3)
SPEC = TestSpec("assert add(1, 2) == 3\nassert add(-5, 5) == 0\nassert add(10, 20) == 30")
GOOD = "def add(a, b):\n    return a + b\n"


@pytest.fixture(scope="module", autouse=True)
def isolated():
    iso = isolation()  # fails (does not skip) where the sandbox cannot be built: CI must have it
    assert iso.isolated, iso


# --------------------------------------------------------------------------- honest programs


def test_correct_wrong_and_broken_programs():
    assert run_tests(GOOD, SPEC, FAST).passed
    res = run_tests("def add(a, b):\n    return a - b\n", SPEC, FAST)
    assert (res.passed, res.status, res.detail) == (False, "failed", "AssertionError")
    res = run_tests("def add(a, b) return a + b", SPEC, FAST)
    assert not res.passed and "did not load" in res.detail and "SyntaxError" in res.detail
    res = run_tests("def plus(a, b):\n    return a + b\n", SPEC, FAST)
    assert not res.passed and "NameError" in res.detail
    res = run_tests("def add(a, b):\n    raise ValueError('no')\n", SPEC, FAST)
    assert not res.passed and res.detail == "ValueError: no"


def test_a_candidates_exception_is_a_failure_no_test_can_catch():
    """No MBPP or HumanEval test expects the program to raise; a raised exception coming back as the
    built-in would be control flow in the judge (a StopIteration ends `all(map(...))` as a pass)."""
    spec = TestSpec("try:\n    f(-1)\n    raise AssertionError('no error')\nexcept BaseException:\n    pass\nassert f(2) == 4")
    res = run_tests("def f(x):\n    if x < 0:\n        raise ValueError(x)\n    return x * x\n", spec, FAST)
    assert (res.passed, res.status, res.detail) == (False, "failed", "ValueError: -1")
    stop = run_tests("def add(a, b):\n    raise StopIteration\n", TestSpec("assert all(map(lambda x: add(x, 1), [1, 2]))"),
                     FAST)
    assert (stop.passed, stop.detail) == (False, "StopIteration")


def test_state_imports_and_helpers_behave_as_in_one_interpreter():
    # the program's own module state persists across calls; `math` imported by the program is usable
    # by the tests (as in MBPP, where tests use what the solution imported); setup helpers stay trusted
    prog = "import math\n_calls = []\ndef f(x):\n    _calls.append(x)\n    return len(_calls), math.sqrt(x)\n"
    spec = TestSpec("assert f(4) == (1, 2.0)\nassert f(9) == (2, 3.0)\nassert math.isclose(f(2)[1], 2 ** 0.5)")
    assert run_tests(prog, spec, FAST).passed
    he = TestSpec("def check(candidate):\n    assert candidate([1, 2]) == helper([1, 2])\ncheck(total)\n",
                  setup="def helper(xs):\n    return sum(xs)\ndef total(xs):\n    '''stub'''\n", names=("total",))
    assert run_tests("def helper(xs):\n    return 999\ndef total(xs):\n    return sum(xs)\n", he, FAST).passed
    assert not run_tests("def helper(xs):\n    return 999\ndef total(xs):\n    return 999\n", he, FAST).passed


def test_a_program_that_shadows_builtins_cannot_change_the_asserts():
    # MBPP 126 asks for a function named `sum`: named by the trusted side, it is the candidate's
    spec = TestSpec("assert sum(10, 15) == 6\nassert sorted([3, 1]) == [1, 3]", names=("sum",))
    assert run_tests("def sum(a, b):\n    return 6\n", spec, FAST).passed
    # ...but `sorted` is not named: redefining it does not reach the judge
    lying = "def sum(a, b):\n    return 6\ndef sorted(x):\n    return 'rigged'\n"
    assert run_tests(lying, spec, FAST).passed
    spec2 = TestSpec("assert set(f()) == set([1, 2])")
    assert not run_tests("def set(*a):\n    return 1\ndef f():\n    return [9]\n", spec2, FAST).passed


@pytest.mark.parametrize("value", [
    None, True, False, 0, -(2 ** 200), 2 ** 20000, 1.5, float("inf"), -0.0, 3 - 4j, "", "é\udc80x", b"\x00\xff",
    [1, [2, (3, frozenset({4}))]], (), {1: "a", (2, 3): [4], None: {5}}, set(), {1.5, "x"}, int, (str, type(None)),
], ids=lambda v: type(v).__name__)
def test_wire_round_trips_builtin_data_exactly(value):
    back = decode(encode(value))
    assert back == value and type(back) is type(value)
    if type(value) is not int:  # (repr of a 6000-digit int is refused by Python itself)
        assert repr(back) == repr(value)


def test_wire_keeps_stdlib_containers_and_nan():
    import collections
    import math

    for v in (collections.Counter("abca"), collections.OrderedDict([(2, 1), (1, 2)]),
              collections.defaultdict(list, {1: [2]}), collections.deque([1, 2], maxlen=3)):
        back = decode(encode(v))
        assert type(back) is type(v) and back == v
    assert decode(encode(collections.defaultdict(list))).default_factory is list
    assert math.isnan(decode(encode(float("nan"))))


@pytest.mark.parametrize("value", [
    type("Sneaky", (int,), {"__eq__": lambda s, o: True})(1), type("S", (str,), {})("x"), iter([1]),
    (x for x in ()), object(), lambda: 1, bytearray(b"x"), range(3), [object()], {1: object()},
    __import__("collections").defaultdict(lambda: 1),
], ids=lambda v: type(v).__name__)
def test_wire_refuses_everything_else(value):
    with pytest.raises(WireError):
        encode(value)


def test_wire_refuses_cycles_and_malformed_data():
    cyc: list = []
    cyc.append(cyc)
    with pytest.raises(WireError):
        encode(cyc)
    for bad in (b"", b"x", b"i\x00\x00\x00\x02zz", b"m\x00\x00\x00\x01l\x00\x00\x00\x00n", b"l\xff\xff\xff\xffn",
                b"nn", b"s\x00\x00\x00\x01\xff", b"s\x00\x00\x00\x09abc", b"D\x63\x00\x00\x00\x00",
                b"l\x00\x00\x00\x01" * 300 + b"n"):
        with pytest.raises(WireError):
            decode(bad)


# --------------------------------------------------------------------------- hostile programs

SANDBOX_MARK = "sandbox/inside.py"  # every sandboxed interpreter, and what it forks, runs this


def _sandbox_processes(marker: str) -> list[str]:
    """Processes that a sandbox of this test process started and that are still alive: by argv (the
    program's own mark), and, where sandboxes have cgroups, by membership in this process's sandbox
    cgroups, which no sandboxed process can leave (without them: by the sandbox's uid in root mode and
    by argv). Not by uid or argv alone where there are cgroups: other t2 processes on the machine (a
    training run scoring MBPP) run sandboxes of their own at the same time."""
    from t2core.sandbox import cgroups

    h, _ = cgroups.hierarchy()
    mine = f"/{cgroups.PARENT}/{os.getpid()}-"
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            uid = int(Path(f"/proc/{pid}/status").read_text().split("\nUid:")[1].split()[1])
            groups = Path(f"/proc/{pid}/cgroup").read_text()
        except (OSError, IndexError, ValueError):
            continue
        if not cmd:  # a kernel thread, or a process already exiting
            continue
        ours = (mine in groups if h is not None
                else SANDBOX_MARK in cmd or (os.geteuid() == 0 and uid == DEFAULT_HOST_UID))
        if ours or marker in cmd:
            found.append(f"{pid} uid={uid}: {cmd[:120]}")
    return found


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def victim(tmp_path):
    """World-writable places outside the sandbox: only the mount view may keep a program out."""
    outside = tmp_path / "outside"
    outside.mkdir()
    outside.chmod(0o777)
    (outside / "keep.txt").write_text("keep me")
    (outside / "keep.txt").chmod(0o666)
    return outside


@pytest.fixture(scope="module")
def loopback():
    """A TCP server on the host's loopback that records anything a sandboxed program sends it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    got: list[bytes] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                got.append(conn.recv(100))
                conn.close()
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], got
    stop.set()
    thread.join()
    listener.close()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_program_is_contained(name, victim, loopback):
    port, got = loopback
    secret = f"secret-{uuid.uuid4().hex}"  # the expected value: only the judge has it
    mark = f"t2mark{uuid.uuid4().hex[:12]}"
    src = (HOSTILE[name].replace("{out_rel}", str(victim).lstrip("/")).replace("{out}", str(victim))
           .replace("{mark}", mark).replace("{port}", str(port)))
    # where the program could simply know the right answers (MBPP shows its asserts to the model),
    # the expected values are a secret: a pass then means the harness was fooled
    secretive = name.startswith(("reading", "forged replies"))
    spec = TestSpec(f"assert add(1, 2) == {secret!r}\nassert add(2, 2) == {secret!r}") if secretive else SPEC
    host_tmp = set(os.listdir("/tmp"))
    host_shm = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    fds = _open_fds()
    limits = SandboxLimits(timeout_s=4, cpu_s=3, memory_mb=512)

    t0 = time.monotonic()
    res = run_tests(src, spec, limits)
    took = time.monotonic() - t0

    assert not res.passed, res
    if name.startswith("reading"):
        assert res.detail == "AssertionError", res  # it finished looking and found nothing
    assert took < limits.timeout_s + 3, took  # the wall clock holds, whatever holds the pipes
    assert _sandbox_processes(mark) == []  # gone at once, `setsid` daemons included
    assert _open_fds() == fds  # no descriptor leaked
    assert run_tests(GOOD, SPEC, FAST).passed  # the next correct candidate still passes
    time.sleep(0.2)  # a surviving writer would have written by now
    assert sorted(os.listdir(victim)) == ["keep.txt"]
    assert (victim / "keep.txt").read_text() == "keep me"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o777
    assert not any(mark in n for n in set(os.listdir("/tmp")) - host_tmp)
    if os.path.isdir("/dev/shm"):
        assert not any(mark in n for n in set(os.listdir("/dev/shm")) - host_shm)
    assert got == []  # nothing reached the host's loopback


def test_an_output_flood_does_not_grow_the_caller():
    """400 MB of output against a fresh caller process: its peak memory stays small (1 MiB kept per stream)."""
    import json
    import subprocess

    # VmHWM, the peak of this process's own memory (ru_maxrss would carry the parent's peak across exec)
    code = ("import json\n"
            "from t2core.sandbox import SandboxLimits, TestSpec, run_tests\n"
            f"r = run_tests({HOSTILE['output flood']!r}, TestSpec({SPEC.tests!r}), SandboxLimits(timeout_s=20))\n"
            "hwm = [int(ln.split()[1]) for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]\n"
            "print(json.dumps([r.passed, hwm]))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parent.parent)
    assert res.returncode == 0, res.stderr
    passed, peak_kb = json.loads(res.stdout)
    assert not passed and peak_kb < 150 * 1024, peak_kb


def test_pipe_holders_and_timeouts_do_not_stall_the_caller():
    t0 = time.monotonic()
    res = run_tests("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\ntime.sleep(60)\n",
                    SPEC, SandboxLimits(timeout_s=1.5))
    assert res.status == "timeout" and time.monotonic() - t0 < 4
    assert _sandbox_processes("time.sleep(60)") == []


def test_limits_are_applied(victim):
    probe = ("import resource, os\n"
             "def add(a, b):\n"
             "    return [resource.getrlimit(r) for r in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_FSIZE,"
             " resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC)], os.getuid(), sorted(os.listdir('/')), os.getcwd()\n")
    lim = SandboxLimits(memory_mb=300, cpu_s=4, file_mb=2, nofile=40, nproc=5)
    mb = 1024 * 1024
    visible = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "dev", "tmp", "work", "t2sandbox",
               Path(sys.base_prefix).resolve().parts[1]}
    spec = TestSpec(f"r = add(0, 0)\nassert r[0] == [({300 * mb}, {300 * mb}), (4, 4), ({2 * mb}, {2 * mb}), (40, 40), (5, 5)], r\n"
                    f"assert r[1] == 65534 and r[3] == '/work', r\nassert set(r[2]) <= {visible!r}, r\n"
                    "assert 'proc' not in r[2] and 'home' not in r[2], r")
    res = run_tests(probe, spec, lim)
    assert res.passed, res


def test_judging_in_parallel_keeps_verdicts_in_order():
    progs = [GOOD if i % 3 else "def add(a, b):\n    return 0\n" for i in range(8)]
    res = run_many([(p, SPEC) for p in progs], FAST, workers=4)
    assert [r.passed for r in res] == [bool(i % 3) for i in range(8)]


# --------------------------------------------------------------------------- no sandbox: refuse, or opt in


@pytest.fixture
def no_bwrap(monkeypatch):
    """This machine as one without bubblewrap (or user namespaces)."""
    from t2core.sandbox import isolate as iso_mod

    monkeypatch.setattr(iso_mod, "_detect", lambda: ("", "bwrap not found"))
    monkeypatch.delenv("T2_UNSAFE_EXEC", raising=False)


def test_without_isolation_generated_code_is_refused(no_bwrap):
    from t2core.sandbox import SandboxUnavailable
    from t2core.tasks import get_task

    with pytest.raises(SandboxUnavailable, match=r"bwrap not found.*apt-get install bubblewrap.*--unsafe-exec"):
        run_tests(GOOD, SPEC, FAST)
    with pytest.raises(SandboxUnavailable):
        get_task("mbpp").preflight()
    get_task("gsm8k").preflight()  # tasks that run no code do not care


def test_unsafe_exec_is_an_explicit_opt_in(no_bwrap, monkeypatch):
    monkeypatch.setenv("T2_UNSAFE_EXEC", "1")
    assert isolation().mode == "unsafe"
    assert run_tests(GOOD, SPEC, FAST).passed  # the two-process judge still decides
    assert not run_tests(HOSTILE["always-equal object"], SPEC, FAST).passed


def test_cli_refuses_code_tasks_without_a_sandbox_and_takes_unsafe_exec(tmp_path, t2_home, data_dir):
    import shutil

    from conftest import catalog_rows, t2_cli

    bin_dir = tmp_path / "bin"  # a PATH with prlimit but no bubblewrap
    bin_dir.mkdir()
    (bin_dir / "prlimit").symlink_to(shutil.which("prlimit"))
    env = {"PATH": str(bin_dir), "T2_DATA_DIR": str(data_dir)}
    args = ["eval", "--model", "tiny-random", "--task", "mbpp", "--limit", "2", "--max-new-tokens", "4"]
    res = t2_cli(*args, env=env)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "cannot isolate generated code" in lines[0] and "--unsafe-exec" in lines[0]
    assert not (t2_home / "catalog.duckdb").exists() or catalog_rows(t2_home, "SELECT * FROM runs") == []
    res = t2_cli("--unsafe-exec", *args, env=env)
    assert res.returncode == 0, res.stderr
    assert catalog_rows(t2_home, "SELECT status FROM runs") == [("completed",)]


def test_unprivileged_callers_get_the_user_namespace_sandbox(tmp_path):
    """Root callers take the two-layer path; here a non-root user (uid 65534, the system Python)
    runs the same package: bubblewrap's user namespace alone isolates it."""
    import json
    import shutil
    import subprocess
    import tempfile

    if os.geteuid() != 0:  # the rest of this file already runs unprivileged
        assert isolation().mode == "bwrap-user"
        return
    if not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("no /usr/bin/python3 for the unprivileged caller")
    repo = Path(__file__).resolve().parent.parent
    root = Path(tempfile.mkdtemp(prefix="t2-userns-"))  # world-readable copy: the checkout may sit under /root
    try:
        (root / "t2core" / "sandbox").mkdir(parents=True)
        for rel in ("t2core/__init__.py", "t2core/errors.py", "t2core/safe_text.py", *(f"t2core/sandbox/{p.name}"
                                                                 for p in (repo / "t2core/sandbox").glob("*.py"))):
            shutil.copy(repo / rel, root / rel)
        import pyseccomp  # the filter's compiler: one pure-Python file over the system's libseccomp

        shutil.copy(pyseccomp.__file__, root / "pyseccomp.py")
        for p in [root, *root.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        script = (
            "import json, os\n"
            "from t2core.sandbox import SandboxLimits, TestSpec, isolation, run_tests\n"
            f"spec = TestSpec({SPEC.tests!r})\n"
            "lim = SandboxLimits(timeout_s=4, cpu_s=3)\n"
            f"good = run_tests({GOOD!r}, spec, lim).passed\n"
            f"eq = run_tests({HOSTILE['always-equal object']!r}, spec, lim).passed\n"
            "uid = run_tests('import os\\ndef add(a, b):\\n    return os.getuid()', TestSpec('assert add(0, 0) == 65534'), lim)\n"
            "print(json.dumps([isolation().mode, os.getuid(), good, eq, uid.passed]))\n")
        res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
                              "-I", "-c", f"import sys; sys.path.insert(0, {str(root)!r})\n" + script],
                             capture_output=True, text=True, timeout=60, cwd="/", env={"PATH": "/usr/bin:/bin"})
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout) == ["bwrap-user", 65534, True, False, True]
        # a user who cannot make cgroups is told so, once, and judged with rlimits and tmpfs sizes
        assert res.stderr.count("t2 sandbox: no memory/pids cgroup (") == 1, res.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)
