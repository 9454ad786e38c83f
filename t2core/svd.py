"""SVD once (paper §3.1-3.2): W = U diag(s) Vᵀ for every targeted matrix, cached.

SVF trains only a vector z per matrix and rebuilds W' = U diag(s ⊙ z) Vᵀ, so the
decomposition is computed once per (base weights, target spec) and stored in the
content-addressed artifact store: key = hash(model weights hash, target spec, matrix
names, SVD format version). The file is hashed on write and verified on load; a second
call finds the artifact and does no SVD.

Shapes, for W of shape (out, in) and r = min(out, in):
    U (out, r), S (r,), V (in, r)    with W ≈ U @ diag(S) @ V.T
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from t2core.artifacts import ArtifactStore, Manifest
from t2core.errors import ArtifactError
from t2core.ids import content_id
from t2core.models.registry import LoadedModel
from t2core.models.targets import check_target_spec, find_targets

KIND = "svd"
FORMAT_VERSION = "svd-v1"
FILE = "svd.safetensors"


@dataclass
class SVDInfo:
    """What was decomposed, where it lives, and how well it reconstructs."""

    key: str
    path: Path
    weights_hash: str
    targets: str
    n_matrices: int
    bytes: int
    seconds: float  # SVD compute time (0.0 when reused)
    reused: bool
    max_errors: dict[str, float] = field(default_factory=dict)  # per matrix: max |U diag(S) Vᵀ - W|
    shapes: dict[str, list[int]] = field(default_factory=dict)

    @property
    def max_error(self) -> float:
        return max(self.max_errors.values(), default=0.0)


def decomposition_key(weights_hash: str, targets: str, names: list[str]) -> str:
    return content_id([FORMAT_VERSION, weights_hash, targets, sorted(names)], 32)


def svd_matrix(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD in fp32: returns U (out, r), S (r,), V (in, r)."""
    u, s, vh = torch.linalg.svd(w.detach().float(), full_matrices=False)
    return u.contiguous(), s.contiguous(), vh.T.contiguous()


def _info(man: Manifest, store: ArtifactStore, reused: bool) -> SVDInfo:
    m = man.meta
    return SVDInfo(key=man.key, path=store.path(KIND, man.key) / FILE, weights_hash=m["weights_hash"],
                   targets=m["targets"], n_matrices=m["n_matrices"], bytes=man.total_bytes,
                   seconds=0.0 if reused else m["seconds"], reused=reused, max_errors=m["max_errors"],
                   shapes=m["shapes"])


#: (store root, key) -> the file's stamp when this process last hashed it: an artifact is re-hashed once per
#: process (the first use), not at every use (8B MLP factors are ~29 GB: every re-hash reads them all again),
#: and again only if its file or its manifest changed since (size, mtime, ctime, inode, recorded sha256).
_VERIFIED: dict[tuple[str, str], tuple] = {}


def _stamp(store: ArtifactStore, key: str, man: Manifest) -> tuple | None:
    try:
        st = (store.path(KIND, key) / FILE).stat()
    except OSError:
        return None  # missing: `verify` says so
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, man.files.get(FILE, {}).get("sha256"))


def verified(store: ArtifactStore, key: str) -> Manifest:
    """`store.verify(KIND, key)` (every byte re-hashed), once per process while the file stays as it was."""
    man = store.manifest(KIND, key)  # read each time: a garbled manifest is an error at once
    memo = (str(store.root.resolve()), key)
    stamp = _stamp(store, key, man)
    if stamp is not None and _VERIFIED.get(memo) == stamp:
        return man
    man = store.verify(KIND, key)
    if stamp is not None:
        _VERIFIED[memo] = stamp
    return man


def stored_svd(key: str, store: ArtifactStore | None = None) -> SVDInfo:
    """The stored decomposition `key`, its files verified against their manifest (no model needed)."""
    store = store or ArtifactStore()
    return _info(verified(store, key), store, reused=True)


def ensure_svd(
    loaded: LoadedModel, targets: str = "mlp", store: ArtifactStore | None = None, rebuild: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SVDInfo:
    """Decompose the targeted matrices of `loaded`, or reuse (after verifying) the stored decomposition.

    `progress(done, total)` after each matrix (12 s to minutes on a CPU: say what is happening)."""
    check_target_spec(targets)
    store = store or ArtifactStore()
    mods = find_targets(loaded.model, loaded.family, targets)
    key = decomposition_key(loaded.weights_hash, targets, list(mods))
    if store.exists(KIND, key) and not rebuild:
        return _info(verified(store, key), store, reused=True)
    if rebuild and store.path(KIND, key).exists():
        import shutil

        shutil.rmtree(store.path(KIND, key))

    def write(tmp: Path) -> dict:
        tensors: dict[str, torch.Tensor] = {}
        errors: dict[str, float] = {}
        shapes: dict[str, list[int]] = {}
        t0 = time.perf_counter()
        for i, (name, mod) in enumerate(mods.items()):
            if progress:
                progress(i, len(mods))
            w = mod.weight.detach().float()
            u, s, v = svd_matrix(w)
            errors[name] = float((u @ torch.diag(s) @ v.T - w).abs().max())
            shapes[name] = list(w.shape)
            tensors[f"{name}.U"], tensors[f"{name}.S"], tensors[f"{name}.V"] = u.cpu(), s.cpu(), v.cpu()
        seconds = time.perf_counter() - t0
        if progress:
            progress(len(mods), len(mods))
        save_file(tensors, str(tmp / FILE), metadata={"format": FORMAT_VERSION, "targets": targets})
        return {"seconds": seconds, "max_errors": errors, "shapes": shapes}

    meta = {"weights_hash": loaded.weights_hash, "targets": targets, "n_matrices": len(mods),
            "model": loaded.alias, "source": loaded.source, "format": FORMAT_VERSION}
    man = store.write(KIND, key, write, meta=meta)
    return _info(man, store, reused=False)


def target_spec_for(loaded: LoadedModel, names: set[str]) -> str:
    """The smallest target spec (mlp, attn, both) holding every matrix in `names`.

    A process that holds its own copy of the model (a remote sampler) receives experts as vectors
    only and needs the decomposition of the matrices they target (`ensure_svd(loaded, spec)`)."""
    for spec in ("mlp", "attn", "both"):
        if names <= set(find_targets(loaded.model, loaded.family, spec)):
            return spec
    unknown = sorted(names - set(find_targets(loaded.model, loaded.family, "both")))
    raise ArtifactError(f"SVF vectors target {unknown[:3]}, which {loaded.alias!r} does not have: "
                        "vectors for another model.")


def load_svd(info_or_key: SVDInfo | str, store: ArtifactStore | None = None, verify: bool = True
             ) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """{matrix name: (U, S, V)} of a stored decomposition, on the CPU; verifies the file hash first (once per
    process: `verified`). What computes with a model takes its factors from
    `t2core.svf.placement.resident_svd` instead: on the model's device, once per model load."""
    store = store or ArtifactStore()
    key = info_or_key.key if isinstance(info_or_key, SVDInfo) else info_or_key
    man = verified(store, key) if verify else store.manifest(KIND, key)
    path = store.path(KIND, key) / FILE
    try:
        flat = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types
        raise ArtifactError(f"SVD file {path} cannot be read ({e}); delete {path.parent} and rerun `t2 svd`.") from e
    out = {}
    for name in man.meta["shapes"]:
        try:
            out[name] = (flat[f"{name}.U"], flat[f"{name}.S"], flat[f"{name}.V"])
        except KeyError as e:
            raise ArtifactError(f"SVD file {path} lacks tensor {e}; delete {path.parent} and rerun `t2 svd`.") from e
    return out
