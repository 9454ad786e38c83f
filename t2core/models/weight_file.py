"""Exact copies of a loaded model's weights, read back from the safetensors file it was loaded from.

Why: an expert swap on the host (t2core/svf/apply.py, paper §3.3) would otherwise keep every targeted
weight twice while W' is in place (0.32 GB for SmolLM2's MLP in float32, in every stage that applies an
expert: issue 43). With the file at hand the original need not be kept at all: W' is
written over it and the original is read back afterwards, exactly (the file holds what was loaded).

Plain reads, no mmap: a mapped file's touched pages count in the process's resident set, and reading
the whole file that way would cost what the swap saves. Only one matrix is in flight at a time.
The file is opened once per swap and kept open until the weights are back: a file replaced on disk
meanwhile (a re-conversion writes a new directory and renames it) still reads as it was.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


class WeightFile:
    """The tensors of a directory's safetensors files, by name: `read(name)` gives one as stored."""

    def __init__(self, directory: Path) -> None:
        self._files = []
        self._where: dict[str, tuple[int, str, list[int], int, int]] = {}  # name -> (file, dtype, shape, start, end)
        for path in sorted(Path(directory).glob("*.safetensors")):
            f = open(path, "rb")  # noqa: SIM115 - held open until close(): see the module docstring
            self._files.append(f)
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
            for name, info in header.items():
                if name != "__metadata__":
                    lo, hi = info["data_offsets"]
                    self._where[name] = (len(self._files) - 1, info["dtype"], info["shape"], 8 + n + lo, 8 + n + hi)

    def __contains__(self, name: str) -> bool:
        return name in self._where and self._where[name][1] in _DTYPES

    def read(self, name: str) -> torch.Tensor:
        """The tensor `name` as the file stores it (its own dtype and shape), in fresh host memory."""
        i, dtype, shape, start, end = self._where[name]
        f = self._files[i]
        f.seek(start)
        buf = bytearray(end - start)
        if f.readinto(buf) != len(buf):
            raise OSError(f"{f.name}: {name} is cut short")
        return torch.frombuffer(buf, dtype=_DTYPES[dtype]).reshape(shape)

    def matches(self, name: str, w: torch.Tensor) -> bool:
        """Whether the file's `name` is exactly `w` once loaded as `w` is (its dtype): only then can it restore w."""
        if name not in self:
            return False
        t = self.read(name)
        return tuple(t.shape) == tuple(w.shape) and torch.equal(t.to(w.dtype), w)

    def restore(self, name: str, w: torch.Tensor) -> None:
        """Writes the file's `name` into `w` in place (in `w`'s dtype, as the model was loaded)."""
        w.copy_(self.read(name))

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files.clear()

    def __enter__(self) -> WeightFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
