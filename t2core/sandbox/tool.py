"""Trusted judging tools that evaluate model text, run in the sandbox (caller side).

Some judges must evaluate what a model wrote: a MATH answer is compared as an expression, and the
libraries that do it (math-verify, sympy's `parse_expr`) call `eval` on text derived from the
output. So the judging rules run where model-written programs run (house rule 10): one sandboxed
interpreter per batch, with the venv's packages and the rules' folder bound read-only, the items on
stdin and the results on a pipe only the tool holds (`tool_main.py`). A batch whose process dies or
times out is judged again one item a process, so one hostile or pathological answer costs only its
own verdict.
"""

from __future__ import annotations

import json
import os
import selectors
import struct
import sysconfig
import time
from pathlib import Path

from t2core.sandbox.isolate import INSIDE, SANDBOX_DIR, SandboxLimits, interpreter, isolation
from t2core.sandbox.runner import GRACE_S, _drain, _pipe, _Proc, _pump, watch

TOOL_ROOT = "/t2tool"  # where the rules' package folder is seen in the sandbox
CHUNK = 64  # items per sandboxed process: the results frame stays far below the runner's 64 KiB


def tool_limits(n_items: int, per_item_s: float) -> SandboxLimits:
    """Limits for one batch: a start-up allowance plus `per_item_s` an item; 2 GiB for the libraries."""
    budget = 15 + per_item_s * n_items
    return SandboxLimits(timeout_s=budget, cpu_s=int(budget) + 1, memory_mb=2048, nproc=8, nofile=256)


def run_tool(package: Path, module: str, items: list[list], per_item_s: float = 10.0) -> list[list]:
    """[parsed, correct, detail] for each item, from `package.module.judge(*item)` run sandboxed."""
    out: list[list] = []
    for i in range(0, len(items), CHUNK):
        chunk = items[i:i + CHUNK]
        got = _run_batch(package, module, chunk, per_item_s)
        if got is None:  # the batch's process died or ran out of time: each item alone
            got = []
            for item in chunk:
                one = _run_batch(package, module, [item], per_item_s)
                got.append(one[0] if one else [None, False, "the judging tool ended without a result "
                                                            f"(limit {per_item_s:.0f} s, 2 GiB)"])
        out += got
    return out


def _run_batch(package: Path, module: str, items: list[list], per_item_s: float) -> list[list] | None:
    iso = isolation()
    limits = tool_limits(len(items), per_item_s)
    site = sysconfig.get_paths()["purelib"]
    if iso.isolated:
        binds = ((str(package), f"{TOOL_ROOT}/{package.name}"), (site, site))
        root, where = TOOL_ROOT, SANDBOX_DIR
    else:
        binds, root, where = (), str(package.parent), str(INSIDE.parent)
    res_r, res_w = _pipe()
    argv = [interpreter(), "-I", "-S", "-B", f"{where}/tool_main.py", str(res_w), root,
            f"{package.name}.{module}", site]
    raw = bytearray()
    sel = selectors.DefaultSelector()
    proc = None
    try:
        proc = _Proc(iso, argv, limits, (res_w,), json.dumps(items).encode("utf-8", errors="surrogatepass"), binds)
        os.close(res_w)
        res_w = -1
        os.set_blocking(res_r, False)
        sel.register(res_r, selectors.EVENT_READ, ("verdict", None))
        watch(sel, proc)
        done = _pump(sel, raw, time.monotonic() + limits.timeout_s)
    except OSError:
        done = False
    finally:
        if proc is not None:
            proc.kill()
        _drain(sel, time.monotonic() + GRACE_S)
        sel.close()
        if proc is not None:
            proc.reap()
            proc.close()
        for fd in (res_r, res_w):
            if fd >= 0:
                os.close(fd)
    return _results(bytes(raw), len(items)) if done else None


def _results(raw: bytes, n: int) -> list[list] | None:
    if len(raw) < 4 or len(raw) != 4 + struct.unpack(">I", raw[:4])[0]:
        return None
    try:
        res = json.loads(raw[4:])
    except ValueError:
        return None
    ok = (isinstance(res, list) and len(res) == n
          and all(isinstance(r, list) and len(r) == 3 and (r[0] is None or isinstance(r[0], str))
                  and isinstance(r[1], bool) and isinstance(r[2], str) for r in res))
    return res if ok else None
