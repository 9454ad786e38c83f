"""What runs *inside* the two sandboxes of one judgement (standard library only).

Run as ``python -I -S inside.py candidate|judge FD...`` by `t2core.sandbox.runner`, never imported
by the candidate's code. Two processes, two sandboxes (paper §4 scores MBPP/HumanEval, and the
code expert's REINFORCE rewards, by executing model-written programs, so the verdict must not be
forgeable by the program under test):

- the **candidate** process executes the model's program and then serves calls: it reads a
  request (function name, arguments) from one pipe and writes the return value to another;
- the **judge** process executes the trusted test code (MBPP's `test_setup_code` and asserts,
  HumanEval's prompt and `check(candidate)`) with every name the tests take from the program
  bound to a proxy that crosses the pipes.

Only values of built-in data types cross, in a small binary format (`wire.py`: `encode`/`decode`): None,
bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset, and the plain
containers of `collections` (Counter, OrderedDict, defaultdict with a built-in factory, deque),
and the built-in types themselves (`int`, `str`, ...).
The judge's decoder builds them itself, so an object with a lying ``__eq__``, a subclass, a generator or anything else the candidate returns
cannot reach the asserts: it is a failure. The judge reports its verdict on a third pipe that
only the caller reads. The candidate never sees the tests, the expected values or the verdict
pipe; the file systems, users, PID and network namespaces that keep it from reaching them are
built by the operating system (`t2core.sandbox.isolate`), not by this file.
"""

from __future__ import annotations

import builtins
import os
import sys

try:  # the trusted side imports this file as part of the package
    from t2core.sandbox.wire import WireError, decode, encode, recv, send
except ImportError:  # run as a script inside the sandbox (python -I -S): the codec is the file beside this one
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from wire import WireError, decode, encode, recv, send  # type: ignore[no-redef]


# --------------------------------------------------------------------------- candidate side
# Messages (tuples): judge -> candidate ("describe", name) | ("call", name, args, kwargs);
# candidate -> judge ("loaded",) | ("load-failed", error) first, then per request
# ("callable",) | ("module", name) | ("value", v) | ("missing",) | ("other",) for describe and
# ("ok", value) | ("raise", exception type name, message) | ("bad", why) for call.


def _describe(ns: dict, name: str) -> tuple:
    if name not in ns:
        return ("missing",)
    obj = ns[name]
    if type(obj) is type(sys):
        return ("module",)  # no name: the judge imports only what the trusted tests name
    if callable(obj):
        return ("callable",)
    try:
        encode(obj)
    except WireError:
        return ("other",)
    return ("value", obj)


def serve_candidate(req_fd: int, rep_fd: int) -> None:
    """Execute the program from stdin, then answer requests until the judge hangs up."""
    src = sys.stdin.read()
    sys.stdin.close()
    ns = {"__name__": "__sandbox__", "__builtins__": builtins}
    try:
        exec(compile(src, "solution.py", "exec"), ns)
    except BaseException as e:  # noqa: B036 - the program's SystemExit etc. are load failures too
        send(rep_fd, ("load-failed", f"{type(e).__name__}: {str(e)[:300]}"))
        return
    send(rep_fd, ("loaded",))
    while True:
        req = recv(req_fd)
        if req is None:
            return
        if req[0] == "describe":
            send(rep_fd, _describe(ns, str(req[1])))
            continue
        _, name, args, kwargs = req
        try:
            result = ns[name](*args, **kwargs)
        except BaseException as e:  # noqa: B036 - reported to the judge as the call's exception
            send(rep_fd, ("raise", type(e).__name__, str(e)[:300]))
            continue
        try:
            send(rep_fd, ("ok", result))
        except WireError as e:
            send(rep_fd, ("bad", f"{name} returned a value that does not cross ({e})"))


# --------------------------------------------------------------------------- judge side


class Unjudgeable(BaseException):
    """The tests pass the candidate something that cannot cross (harness limit, not a failure)."""


class CandidateBroken(BaseException):
    """The candidate died, hung up, raised, or answered with something that is not built-in data.

    A BaseException so that a test's own ``except Exception`` cannot swallow it, and the channel is
    marked broken before it is raised, so that even ``except BaseException`` leaves the verdict failed.
    An exception the candidate raised is one too: a built-in `StopIteration` coming back would end
    the test's own loops (``all(map(...))``), so no candidate exception is ever control flow in the
    judge. No MBPP or HumanEval test expects the program to raise (checked on both datasets)."""


class _Channel:
    def __init__(self, req_fd: int, rep_fd: int) -> None:
        self.req_fd, self.rep_fd, self.broken = req_fd, rep_fd, ""

    def fail(self, why: str):
        self.broken = self.broken or why[:300]
        return CandidateBroken(self.broken)

    def ask(self, msg: tuple) -> tuple:
        if self.broken:
            raise CandidateBroken(self.broken)
        try:
            send(self.req_fd, msg)
        except WireError as e:
            raise Unjudgeable(f"the tests pass {msg[1]} an argument that cannot cross: {e}") from None
        except OSError:
            raise self.fail("the candidate process ended during the tests") from None
        try:
            reply = recv(self.rep_fd)
        except Exception as e:  # noqa: BLE001 - WireError, MemoryError, ...: the reply is the candidate's doing
            raise self.fail(f"bad reply to {msg[1]}: {type(e).__name__}: {str(e)[:200]}") from None
        if reply is None:
            raise self.fail("the candidate process ended during the tests")
        return reply


def _proxy(chan: _Channel, name: str):
    def call(*args, **kwargs):
        reply = chan.ask(("call", name, args, kwargs))
        if reply[0] == "ok" and len(reply) == 2:
            return reply[1]
        if reply[0] == "raise" and len(reply) == 3 and type(reply[1]) is str:
            raise chan.fail(f"{reply[1]}: {str(reply[2])[:300]}".rstrip(": "))
        raise chan.fail(str(reply[1]) if reply[0] == "bad" and len(reply) == 2 else f"malformed reply from {name}")

    call.__name__ = call.__qualname__ = name
    return call


def _bind(chan: _Channel, ns: dict, names: list[str]) -> None:
    for name in names:
        info = chan.ask(("describe", name))
        if info == ("callable",):
            ns[name] = _proxy(chan, name)
        elif info == ("module",):  # the program's `import math`, which the tests use: the tests' name, if stdlib
            if name in sys.stdlib_module_names:
                ns[name] = __import__(name)
        elif info[0] == "value" and len(info) == 2:
            ns[name] = info[1]  # decoded by us: built-in data only
        # ("missing",) / ("other",): left unbound, so the tests meet a NameError as they would have


def run_judge(req_fd: int, rep_fd: int, verdict_fd: int) -> None:
    """Run the trusted tests from stdin against the candidate; write the verdict to `verdict_fd`.

    stdin: (setup, tests, names) from the caller; `names` are taken from the candidate."""
    setup, tests, names = decode(sys.stdin.buffer.read())
    sys.stdin.close()
    chan = _Channel(req_fd, rep_fd)
    ns: dict = {"__name__": "__judge__", "__builtins__": builtins}
    status, detail = "failed", ""
    try:
        exec(compile(setup, "setup.py", "exec"), ns)
        try:
            hello = recv(rep_fd)
        except WireError as e:
            raise chan.fail(f"bad hello: {e}") from None
        if hello is None:
            raise chan.fail("the candidate process ended before it was ready")
        if hello != ("loaded",):
            raise chan.fail(f"the program did not load: {str(hello[1:])[:300]}")
        _bind(chan, ns, list(names))
        exec(compile(tests, "tests.py", "exec"), ns)
        status = "failed" if chan.broken else "passed"
        detail = chan.broken
    except Unjudgeable as e:
        status, detail = "unjudgeable", str(e)
    except CandidateBroken as e:
        detail = str(e)
    except BaseException as e:  # noqa: B036 - a test failed (AssertionError, the candidate's exception, ...)
        detail = f"{type(e).__name__}: {str(e)[:300]}".rstrip(": ")
    if chan.broken and status != "unjudgeable":
        status, detail = "failed", chan.broken
    send(verdict_fd, (status, detail[:500]))


def main(argv: list[str]) -> None:
    role, fds = argv[0], [int(a) for a in argv[1:]]
    if role == "candidate":
        serve_candidate(*fds)
    elif role == "judge":
        run_judge(*fds)
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
