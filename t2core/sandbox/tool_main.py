"""Inside the sandbox: run a trusted judging tool over a batch (standard library only at start).

argv: RESULT_FD ROOT MODULE [PATH ...]. ROOT and the PATHs (the venv's packages, bound read-only)
go on sys.path, MODULE (`<package>.<rules module>` under ROOT) is imported, and its
`judge(*item)` is called on every item read from stdin (a JSON list of argument lists). Each result
is [parsed (str or None), correct (bool), detail (str)]; an exception in one item is that item's
failure, never the batch's. The results leave as one length-prefixed JSON frame on RESULT_FD,
which only this process holds: what the judged text prints cannot be mistaken for a verdict.
"""

import importlib
import json
import os
import struct
import sys

LIMIT = 300  # characters kept of a parsed answer or a detail


def main() -> None:
    fd, root, module, paths = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
    sys.path[:0] = [root, *paths]
    items = json.loads(sys.stdin.buffer.read().decode("utf-8", errors="surrogatepass"))
    judge = importlib.import_module(module).judge
    out = []
    for args in items:
        try:
            parsed, correct = judge(*args)
            out.append([None if parsed is None else str(parsed)[:LIMIT], bool(correct), ""])
        except Exception as e:  # noqa: BLE001 - one item's failure, reported as its detail
            out.append([None, False, f"{type(e).__name__}: {e}"[:LIMIT]])
    frame = json.dumps(out).encode()
    data = memoryview(struct.pack(">I", len(frame)) + frame)
    while data:
        data = data[os.write(fd, data):]
    os.close(fd)


if __name__ == "__main__":
    main()
