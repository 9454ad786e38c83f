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

Only values of built-in data types cross, in a small binary format (`encode`/`decode`): None,
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
import struct
import sys

MAX_FRAME = 16 * 1024 * 1024  # one message; a larger reply is a failure, a larger request unjudgeable
MAX_DEPTH = 200  # nesting of one value (also stops cyclic containers)
# What decoding one message may build, whatever its size on the wire: a 16 MB frame of empty sets
# would be 700 MB of objects, and a set of ints with equal hashes O(n²) time.
MAX_OBJECTS = 500_000  # objects built
MAX_BUILT = 192 * 1024 * 1024  # their approximate size in bytes (CPython's object sizes, 64-bit)
MAX_COLLIDING = 8  # keys of one set or dict that share a hash value
# Standard library only, and only what the interpreter has loaded at start-up (plus `struct`):
# json, ast and collections would each add 5-30 ms to every sandboxed process.


class WireError(ValueError):
    """A value cannot cross (not a built-in data type, too deep, malformed)."""


_SEQ = {list: b"l", tuple: b"u", set: b"e", frozenset: b"z"}
_SEQ_BACK = {v[0]: k for k, v in _SEQ.items()}
_FACTORY = [None, int, float, str, list, set, dict, tuple, bool]  # defaultdict factories that cross
_TYPES = [int, float, str, bool, list, tuple, dict, set, frozenset, bytes, complex, type(None), object]
_U32 = struct.Struct(">I")
_F64 = struct.Struct(">d")


def _collections():
    import collections  # only when a value needs it: most programs never do

    return collections


def encode(x) -> bytes:
    """A value of a built-in data type as bytes; exact types only (no subclasses). WireError otherwise."""
    out = bytearray()
    _enc(x, out, 0)
    return bytes(out)


def _enc(x, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH} (or cyclic)")
    t = type(x)
    if x is None:
        out += b"n"
    elif t is bool:
        out += b"t" if x else b"f"
    elif t is int:
        h = format(x, "x").encode()  # hex: exact, and not bound by the int/str digit limit
        out += b"i" + _U32.pack(len(h)) + h
    elif t is float:
        out += b"d" + _F64.pack(x)  # exact, nan and inf included
    elif t is complex:
        out += b"c" + _F64.pack(x.real) + _F64.pack(x.imag)
    elif t is str or t is bytes:
        b = x.encode("utf-8", "surrogatepass") if t is str else x
        out += (b"s" if t is str else b"y") + _U32.pack(len(b)) + b
    elif t in _SEQ:
        out += _SEQ[t] + _U32.pack(len(x))
        for e in x:
            _enc(e, out, depth + 1)
    elif t is dict:
        _enc_items(b"m", x, out, depth)
    elif t is type and x in _TYPES:  # e.g. MBPP 533 passes `int` to say which items to drop
        out += b"T" + bytes([_TYPES.index(x)])
    elif t.__module__ == "collections" and t.__qualname__ in ("Counter", "OrderedDict", "defaultdict", "deque"):
        col = _collections()
        if t is col.Counter or t is col.OrderedDict:
            _enc_items(b"C" if t is col.Counter else b"O", x, out, depth)
        elif t is col.defaultdict and x.default_factory in _FACTORY:
            out += b"D" + bytes([_FACTORY.index(x.default_factory)])
            _enc_items(b"", x, out, depth)
        elif t is col.deque:
            out += b"Q" + (b"n" if x.maxlen is None else _U32.pack(x.maxlen)) + _U32.pack(len(x))
            for e in x:
                _enc(e, out, depth + 1)
        else:
            raise WireError(f"a defaultdict whose factory is {x.default_factory!r} does not cross")
    else:
        raise WireError(f"a {t.__module__}.{t.__qualname__} is not a built-in data type")


def _enc_items(tag: bytes, x: dict, out: bytearray, depth: int) -> None:
    out += tag + _U32.pack(len(x))
    for k, v in x.items():
        _enc(k, out, depth + 1)
        _enc(v, out, depth + 1)


class _Reader:
    """Strict decoder: builds only built-in objects; anything malformed raises WireError.

    Its cost is bounded by the count and the approximate size of what it builds (`MAX_OBJECTS`,
    `MAX_BUILT`), and hashed containers refuse keys that collide (`MAX_COLLIDING`), so no reply
    costs the judge more than linear time or a fixed amount of memory."""

    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0
        self.objects, self.built = 0, 0

    def spend(self, nbytes: int) -> None:
        self.objects += 1
        self.built += nbytes
        if self.objects > MAX_OBJECTS or self.built > MAX_BUILT:
            raise WireError(f"the value would build more than {MAX_OBJECTS} objects or {MAX_BUILT >> 20} MB")

    def keys(self, keys: list) -> list:
        """`keys`, once no more than MAX_COLLIDING of them share a hash (unhashable: malformed)."""
        seen: dict = {}
        for k in keys:
            h = hash(k)
            seen[h] = n = seen.get(h, 0) + 1
            if n > MAX_COLLIDING:
                raise WireError(f"more than {MAX_COLLIDING} keys of one set or dict share a hash value")
        return keys

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise WireError("truncated value")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def u32(self) -> int:
        return _U32.unpack(self.take(4))[0]

    def count(self) -> int:
        n = self.u32()
        if n > len(self.buf) - self.pos:  # every item takes at least one byte
            raise WireError("truncated container")
        return n

    def value(self, depth: int = 0):
        if depth > MAX_DEPTH:
            raise WireError("nested too deep")
        tag = self.take(1)[0]
        try:
            if tag == 110:  # n
                self.spend(8)
                return None
            if tag in (116, 102):  # t f
                self.spend(8)
                return tag == 116
            if tag == 105:  # i
                n = self.u32()
                self.spend(40 + n // 2)
                return int(self.take(n).decode("ascii"), 16)
            if tag == 100:  # d
                self.spend(32)
                return _F64.unpack(self.take(8))[0]
            if tag == 99:  # c
                self.spend(40)
                return complex(_F64.unpack(self.take(8))[0], _F64.unpack(self.take(8))[0])
            if tag in (115, 121):  # s y
                n = self.u32()
                self.spend(64 + n * (4 if tag == 115 else 1))  # a str may take 4 bytes a character
                b = self.take(n)
                return b.decode("utf-8", "surrogatepass") if tag == 115 else bytes(b)
            if tag in _SEQ_BACK:
                n = self.count()
                hashed = _SEQ_BACK[tag] in (set, frozenset)
                self.spend((216 if hashed else 64) + n * (40 if hashed else 8))  # an empty set is 216 bytes
                items = [self.value(depth + 1) for _ in range(n)]
                return _SEQ_BACK[tag](self.keys(items) if hashed else items)
            if tag in b"mCO":
                out = {} if tag == 109 else getattr(_collections(), "Counter" if tag == 67 else "OrderedDict")()
                return self.items(out, depth)
            if tag == 84:  # T
                k = self.take(1)[0]
                if k >= len(_TYPES):
                    raise WireError("unknown type")
                self.spend(8)
                return _TYPES[k]
            if tag == 68:  # D
                f = self.take(1)[0]
                if f >= len(_FACTORY):
                    raise WireError("unknown defaultdict factory")
                return self.items(_collections().defaultdict(_FACTORY[f]), depth)
            if tag == 81:  # Q
                maxlen = None if self.buf[self.pos:self.pos + 1] == b"n" and self.take(1) else self.u32()
                n = self.count()
                self.spend(64 + n * 8)
                return _collections().deque([self.value(depth + 1) for _ in range(n)], maxlen)
        except (TypeError, ValueError, OverflowError, UnicodeError, struct.error) as e:
            if isinstance(e, WireError):
                raise
            raise WireError(f"malformed value: {str(e)[:100]}") from None
        raise WireError(f"unknown tag {tag!r}")

    def items(self, out: dict, depth: int) -> dict:
        n = self.count()
        self.spend(232 + n * 48)
        pairs = [(self.value(depth + 1), self.value(depth + 1)) for _ in range(n)]
        self.keys([k for k, _ in pairs])  # an unhashable key raises TypeError: malformed
        for k, v in pairs:  # item by item: Counter.update would count the pairs
            out[k] = v
        return out


def decode(buf: bytes):
    """Inverse of `encode`; the whole buffer must be one value."""
    r = _Reader(bytes(buf))
    try:
        v = r.value()
    except RecursionError:
        raise WireError("nested too deep") from None
    if r.pos != len(r.buf):
        raise WireError("trailing bytes")
    return v


def send(fd: int, msg) -> None:
    """One message (a tuple of built-in values), length-prefixed."""
    data = encode(msg)
    if len(data) > MAX_FRAME:
        raise WireError(f"message of {len(data)} bytes is over {MAX_FRAME}")
    view = memoryview(_U32.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        b = os.read(fd, min(n - got, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def recv(fd: int) -> tuple | None:
    """One message (a non-empty tuple whose first item is a str), or None at end of file."""
    head = _read_exact(fd, 4)
    if head is None:
        return None
    (n,) = _U32.unpack(head)
    if n > MAX_FRAME:
        raise WireError(f"message of {n} bytes is over {MAX_FRAME}")
    body = _read_exact(fd, n)
    if body is None:
        return None
    msg = decode(body)
    if type(msg) is not tuple or not msg or type(msg[0]) is not str:
        raise WireError("malformed message")
    return msg


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
