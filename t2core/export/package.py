"""Expert packages: an SVF expert (paper §3.2) as a directory that leaves one T2_HOME and enters another.

    DIR/expert.safetensors   the expert file exactly as the store holds it (z and its header)
    DIR/t2-package.json      the manifest: what the expert is and the sha256 of every other file

The manifest names the expert's content id, the base model (alias and weights hash), the targets, the
parameterisation, how it was made (origin) and its record: the header's task, metrics, training config
and data hashes, plus what the exporting T2_HOME knew of it (the store's training record, the catalog's
rows), so a package says where it came from without that T2_HOME. A LoRA export (`t2core.export.peft_lora`)
is a package of kind `peft-lora` with the same manifest around PEFT's two files.

Why a package is trusted: identity comes from content. `read_package` re-hashes every file against the
manifest, reloads the expert (its vectors against the checksum in its header) and recomputes its id, which
must be the manifest's; the manifest's model and task must be the header's. A flipped byte anywhere, a
manifest edited to claim another model, or a missing file is one error line, and nothing is imported.
Nothing in it depends on when or where it was written: the same expert exports to the same bytes.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2core import __version__
from t2core.artifacts import ArtifactStore, atomic_dir
from t2core.errors import ArtifactError
from t2core.experts import FILE, KIND, ExpertRef, run_expert, store_expert_file
from t2core.hashing import sha256_file
from t2core.svf import ExpertHeader, expert_origin

MANIFEST = "t2-package.json"
FORMAT = "t2-expert-package-v1"
SVF, PEFT_LORA = "svf", "peft-lora"  # the kinds of package: the expert itself, or its LoRA export


def check_destination(dest: str | Path) -> Path:
    """`dest` if it is new or an empty directory: an export never mixes its files with others."""
    p = Path(dest).expanduser()
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        raise ArtifactError(f"{p} exists and is not an empty directory; export into a new or empty directory "
                            "(nothing was written).")
    return p


def describe(expert: ExpertRef, kind: str, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of a package of `expert`, before its files are hashed (`seal`)."""
    h = expert.header
    return {
        "format": FORMAT, "kind": kind, "expert_id": expert.id,
        "model": {"alias": h.model, "weights_hash": h.base_weights_hash},
        "targets": h.svf.get("targets", "mlp"), "method": "svf", "param": h.svf.get("param", "direct"),
        "origin": expert_origin(h), "task": h.task,
        "record": {"header": {"task": h.task, "metrics": h.metrics, "config": h.config, "data_files": h.data_files},
                   **(record or {})},
        "exported_by": f"t2 {__version__}",
    }


def seal(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Hash every file of `folder` into the manifest and write it there (the last file written)."""
    files = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
             for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {**manifest, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str) + "\n")
    return manifest


def write_package(expert: ExpertRef, dest: str | Path, record: dict[str, Any] | None = None) -> Path:
    """Write `expert` as a package into `dest` (new or empty), all at once: a failure leaves no directory.
    `record`: what the exporting T2_HOME knows of the expert beyond its header (the CLI reads it from the
    store and the catalog)."""
    dest = check_destination(dest)
    expert.load()  # the file is still the one its id names
    with atomic_dir(dest) as tmp:
        shutil.copyfile(expert.path, tmp / FILE)
        seal(tmp, describe(expert, SVF, record))
    return dest


@dataclass(frozen=True)
class Package:
    """A verified package: its manifest, and for an SVF package the expert (`ref`) as it lies in it."""

    path: Path
    manifest: dict[str, Any]
    ref: ExpertRef | None

    @property
    def expert_id(self) -> str:
        return self.manifest["expert_id"]

    @property
    def alias(self) -> str:
        return self.manifest["model"]["alias"]

    @property
    def weights_hash(self) -> str:
        return self.manifest["model"]["weights_hash"]

    @property
    def header(self) -> ExpertHeader:
        if self.ref is None:
            raise ArtifactError(f"{self.path} is a {self.manifest['kind']} package and holds no SVF expert file.")
        return self.ref.header


def read_package(path: str | Path, kind: str | None = SVF) -> Package:
    """The package at `path`, every file checked against the manifest and, for an SVF package, the expert
    against its id; `kind`: the kind required (None: either)."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ArtifactError(f"{p} is not a directory; pass the directory `t2 experts export` wrote.")
    mpath = p / MANIFEST
    if not mpath.is_file():
        raise ArtifactError(f"{p} has no {MANIFEST}, so it is not a t2 expert package (or its manifest was lost); "
                            "export it again with `t2 experts export ID DIR`.")
    try:
        man = json.loads(mpath.read_text())
        files, got_kind, eid = man["files"], man["kind"], man["expert_id"]
        _ = (man["model"]["alias"], man["model"]["weights_hash"])  # present, or the package is not whole
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ArtifactError(f"{mpath} is not a readable package manifest ({type(e).__name__}: {e}); export the "
                            "expert again.") from e
    if man.get("format") != FORMAT:
        raise ArtifactError(f"{p} is a package of format {man.get('format')!r}; this t2 reads {FORMAT!r}.")
    if kind is not None and got_kind != kind:
        what = ("a LoRA export (PEFT adapter) of " + eid + ": load it with PEFT or vLLM; import the SVF package "
                "(`t2 experts export ID DIR`)") if got_kind == PEFT_LORA else f"a {got_kind!r} package"
        raise ArtifactError(f"{p} is {what}, not an SVF expert package.")
    for name, info in files.items():
        f = p / name
        if Path(name).name != name or not f.is_file():
            raise ArtifactError(f"package {p}: file {name} is missing; copy the whole directory again.")
        digest = sha256_file(f)
        if digest != info.get("sha256"):
            raise ArtifactError(f"package {p}: file {name} is corrupted (sha256 {digest[:12]}… but the manifest says "
                                f"{str(info.get('sha256'))[:12]}…); copy or export the package again.")
    if got_kind != SVF:
        return Package(p, man, None)
    if FILE not in files:
        raise ArtifactError(f"package {p} lists no {FILE}; export the expert again.")
    # checked as a file outside any store: its vectors against the checksum in its header
    ref = ExpertRef.resolve(str(p / FILE), ArtifactStore(p))
    h = ref.header
    said = {"expert id": (eid, ref.id), "model": (man["model"]["weights_hash"], h.base_weights_hash),
            "task": (man.get("task"), h.task)}
    for what, (claimed, actual) in said.items():
        if claimed != actual:
            raise ArtifactError(f"package {p}: its manifest says {what} {claimed!r}, its expert file is {actual!r}; "
                                "the manifest was edited or belongs to another expert; export the expert again.")
    return Package(p, man, ref)


def check_model(pkg: Package, weights_hash: str, name: str) -> None:
    """Refuse a package whose expert was trained on other base weights than `name`'s (`weights_hash`)."""
    if pkg.weights_hash != weights_hash:
        raise ArtifactError(f"package {pkg.path} holds {pkg.expert_id}, an expert of {pkg.alias} (weights "
                            f"{pkg.weights_hash[:12]}…), not of {name} (weights {weights_hash[:12]}…); import it "
                            f"where {pkg.alias} is the model.")


def store_key(pkg: Package) -> str:
    """Where an imported expert is stored: under its content id (the hex of `svf:<hex>`)."""
    return pkg.expert_id.removeprefix("svf:")


def install(pkg: Package, store: ArtifactStore | None = None) -> ExpertRef:
    """Put the package's expert file, bytes unchanged, in the store under its content id and return it
    verified. One file per content id (as `store_expert`): an expert the store already holds under another
    key gets a manifest pointing there, not a second copy."""
    store = store or ArtifactStore()
    key = store_key(pkg)
    meta = {"task": pkg.header.task, "weights_hash": pkg.weights_hash,
            "imported": {"expert_id": pkg.expert_id, "record": pkg.manifest.get("record", {})}}
    if store.exists(KIND, key):
        ref = run_expert(store, key)
    else:
        ref = store_expert_file(store, key, pkg.expert_id, pkg.header, lambda f: shutil.copyfile(pkg.ref.path, f),
                                meta)
    if ref.id != pkg.expert_id:
        raise ArtifactError(f"the store's {KIND}/{key} holds {ref.id}, not {pkg.expert_id}; delete "
                            f"{store.path(KIND, key)} and import again.")
    return ref
