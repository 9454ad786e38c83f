"""The wire format between the two sandboxes of a judgement and the caller (standard library only).

Only values of built-in data types cross, in a small binary format (`encode`/`decode`): None,
bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset, the plain containers
of `collections`, and the built-in types themselves. The decoder builds every value itself and
bounds its cost by the message size, the number and size of the objects built, the nesting, and
the keys of one set or dict that share a hash (a reply crafted to be slow or large fails fast).
Messages are length-prefixed frames (`send`/`recv`). Imported by `inside.py` inside the sandbox
(as a plain module beside it) and by the trusted runner (as `t2core.sandbox.wire`).
"""

from __future__ import annotations

import os
import struct

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
