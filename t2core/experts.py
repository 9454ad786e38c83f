"""Stored SVF experts: their one content id, verified references to them, and the listing.

Training them is `t2core/training/experts.py`. Experts live at
`T2_HOME/artifacts/experts/<run id>/expert.safetensors` (stored under the
training run id: base weights, RL config, task version, data hashes, so a rerun finds them),
written atomically with a verified manifest. Users see one id per expert, derived from its
content (`expert_id`, `ExpertRef`); the folder is only where it lies. The store holds one file per
content id (`store_expert`): a run whose expert is one the store already has (two runs that both
end at z = 1) gets a manifest pointing to that file, not a second copy (`expert_file` follows it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from t2core.artifacts import ArtifactStore
from t2core.errors import ArtifactError
from t2core.hashing import tensors_hash
from t2core.ids import content_id
from t2core.svf import ExpertHeader, SVFPolicy, load_expert, read_header, save_expert

KIND = "experts"
FILE = "expert.safetensors"
SAME_AS = "same_as"  # manifest key of a run whose expert another run's folder already holds
OWN = "own_header"  # manifest key: that run's own record (config, metrics, data, origin) of the shared expert
_OWN_FIELDS = ("model", "data_files", "config", "metrics", "origin")


def expert_id(header: ExpertHeader, vectors_sha256: str) -> str:
    """The one id of an SVF expert users see everywhere (CLI, flows, catalog, reports): "svf:<24 hex>".

    It hashes what the expert *is* (base weights, parameterisation, its vectors, the task it is
    the expert for), never where its file lies or which run wrote it: two experts in folders of
    the same name get different ids, and the same expert copied elsewhere keeps its id. The task
    is part of it because dispatch (paper §3.3) picks experts by task: two runs that both end at
    z = 1 (no step beat the base model) are still the math and the code expert."""
    payload = [header.base_weights_hash, header.svf, vectors_sha256, header.task]
    return "svf:" + content_id(payload)


@dataclass(frozen=True)
class ExpertRef:
    """A verified SVF expert: its content id, where its file is, and its header (paper §3.2's z vectors).

    Made only by `ExpertRef.resolve`, which checks the file against its hash (the store's manifest,
    and the checksum of the vectors in its header), so every holder of an ExpertRef holds an expert
    whose bytes are the ones its id names. Loading it again (`load`) checks again."""

    id: str
    path: Path
    header: ExpertHeader

    @classmethod
    def resolve(cls, ref: str, store: ArtifactStore | None = None) -> ExpertRef:
        """From an expert id (`svf:<hex>`, a unique prefix of at least 8 hex digits), a file path,
        or the `<task>-<run id prefix>` form of experts listed by t2 0.1 catalogs."""
        store = store or ArtifactStore()
        p = Path(ref).expanduser()
        if p.is_file():
            return cls._from_file(p, store)
        if ref.startswith("svf:"):
            return cls._from_id(ref, store)
        if "-" in ref and (store.root / KIND).is_dir():  # the run-id form older catalogs list
            hits = sorted((store.root / KIND).glob(f"{ref.split('-', 1)[1]}*/{FILE}"))
            if len(hits) == 1:
                return cls._from_file(hits[0], store)
        raise ArtifactError(f"expert {ref!r} is neither an expert file nor a stored expert id; pass an id from "
                            "`t2 catalog ls experts` (svf:<hex>) or the path of an expert file.")

    @classmethod
    def _from_file(cls, path: Path, store: ArtifactStore) -> ExpertRef:
        real = path.resolve()
        if real.parent.parent == (store.root / KIND).resolve():
            store.verify(KIND, real.parent.name)  # the store's manifest: every byte of the file
        elif not read_header(path).vectors_sha256:
            raise ArtifactError(f"expert file {path} has no checksum of its vectors (written by an older t2), so it "
                                "cannot be verified outside the artifact store; use the stored copy (its expert id "
                                "from `t2 catalog ls experts`).")
        policy, header = load_expert(path)  # the vectors against the header's checksum
        return cls(expert_id(header, header.vectors_sha256 or tensors_hash(policy.raw_state())), path, header)

    @classmethod
    def _from_id(cls, ref: str, store: ArtifactStore) -> ExpertRef:
        digits = ref.removeprefix("svf:")
        if len(digits) < 8 or any(c not in "0123456789abcdef" for c in digits):
            raise ArtifactError(f"expert id {ref!r} must be 'svf:' and at least 8 lower-case hex digits "
                                "(see `t2 catalog ls experts`).")
        stored, unreadable = scan_experts(store)
        hits = list({eid: f for eid, f in stored if eid.startswith(ref)}.items())  # one per id:
        # equal ids are equal content (two transfer controls that leave z = 1 unchanged write the same expert)
        if len(hits) != 1:
            raise ArtifactError(f"expert id {ref!r} matches {len(hits)} stored experts"
                                + ("; give more digits." if hits else
                                   f"{unreadable_note(unreadable)}; train it (`t2 train`) or pass its file path."))
        return cls._from_file(hits[0][1], store)

    def check_model(self, weights_hash: str) -> None:
        """Refuse an expert trained on other base weights (before anything runs)."""
        if self.header.base_weights_hash != weights_hash:
            raise ArtifactError(
                f"expert {self.id} was trained on base model {self.header.model!r} (weights "
                f"{self.header.base_weights_hash[:12]}…), not on this model (weights {weights_hash[:12]}…); use "
                "an expert trained on this model.")

    def load(self) -> SVFPolicy:
        """The expert's vectors, checked against the header's checksum again (the file may have changed)."""
        policy, header = load_expert(self.path, self.header.base_weights_hash)
        if expert_id(header, header.vectors_sha256 or tensors_hash(policy.raw_state())) != self.id:
            raise ArtifactError(f"expert file {self.path} changed since it was resolved as {self.id}; rerun.")
        return policy


def scan_experts(store: ArtifactStore | None = None) -> tuple[list[tuple[str, Path]], list[tuple[Path, str]]]:
    """([(expert id, file)] of every readable expert in the store, [(file, why)] of the ones that are not),
    from the headers (vectors are read only for files written before headers carried their checksum)."""
    store = store or ArtifactStore()
    root = store.root / KIND
    ok, bad = [], []
    for f in sorted(root.glob(f"*/{FILE}")) if root.is_dir() else []:
        try:
            header = read_header(f)
            digest = header.vectors_sha256 or tensors_hash(load_expert(f)[0].raw_state())
        except ArtifactError as e:
            bad.append((f, str(e)))
            continue
        ok.append((expert_id(header, digest), f))
    return ok, bad


def stored_experts(store: ArtifactStore | None = None) -> list[tuple[str, Path]]:
    """(expert id, file) of every readable expert in the store (`scan_experts` also names the others)."""
    return scan_experts(store)[0]


def unreadable_note(bad: list[tuple[Path, str]]) -> str:
    """'' or "; N stored expert files cannot be read (the first: <why>)" for `scan_experts`' unreadable
    files, in errors that found no expert: a corrupted file is said, never silently left out."""
    return f"; {len(bad)} stored expert file(s) cannot be read (the first: {bad[0][1]})" if bad else ""


def file_status(method: str, path: str | Path, store: ArtifactStore | None = None) -> str:
    """'ok', 'missing' or 'corrupted' for what an experts row points to: an SVF expert file (verified
    against the store's manifest and its vectors' checksum) or an adapter folder. Using it says why."""
    p = Path(path)
    if not p.exists():
        return "missing"
    try:
        if method == "svf":
            ExpertRef.resolve(str(p), store)
        else:  # <root>/adapters/<adapter id>
            ArtifactStore(p.parent.parent).verify(p.parent.name, p.name)
    except ArtifactError:
        return "corrupted"
    return "ok"


def expert_file(store: ArtifactStore, key: str) -> Path:
    """The expert file stored under `key` (a run id), following the manifest of a run whose expert is
    held in another run's folder (`store_expert`)."""
    target = store.manifest(KIND, key).meta.get(SAME_AS)
    path = store.path(KIND, target or key) / FILE
    if target and not path.is_file():
        raise ArtifactError(f"expert of run {key} is the one stored under {target}, which is missing; delete "
                            f"{store.path(KIND, key)} and rerun to rebuild it.")
    return path


def store_expert(store: ArtifactStore, key: str, policy: SVFPolicy, header: ExpertHeader,
                 meta: dict | None = None) -> ExpertRef:
    """Store an SVF expert under `key` (the run id that made it) and return it verified. One file per
    content id: when the store already holds this expert (same id, under another run's key), the second
    write is only a manifest naming that key, so the store and every listing of it show one expert. That
    manifest keeps what only this run knows (its config, metrics, data files): two runs that end at the same
    vectors (two few-shot searches that pick the same α, two trainings that end at z = 1) still record
    their own numbers (`run_expert`)."""
    return store_expert_file(store, key, expert_id(header, tensors_hash(policy.raw_state())), header,
                             lambda f: save_expert(f, policy, header), meta)


def store_expert_file(store: ArtifactStore, key: str, eid: str, header: ExpertHeader,
                      write: Callable[[Path], object], meta: dict | None = None) -> ExpertRef:
    """`store_expert` for any writer of the file (`write(path)`: a new expert, a copy from a package):
    the file written under `key`, or a manifest naming the run that holds expert `eid` already."""
    held = next((f for i, f in stored_experts(store) if i == eid and f.parent.name != key), None)
    if held is not None:
        own = {f: getattr(header, f) for f in _OWN_FIELDS}
        store.write(KIND, key, lambda tmp: None, meta={**(meta or {}), SAME_AS: held.parent.name, OWN: own})
    else:
        store.write(KIND, key, lambda tmp: (write(tmp / FILE), None)[1], meta=meta)
    return run_expert(store, key)


def run_expert(store: ArtifactStore, key: str) -> ExpertRef:
    """The expert run `key` stored, verified, with that run's own header: the file's where the run wrote it,
    else the file another run wrote with this run's config, metrics and data files (`store_expert`). The
    id is the same either way (it names the vectors, not the run)."""
    ref = ExpertRef.resolve(str(expert_file(store, key)), store)
    own = store.manifest(KIND, key).meta.get(OWN)
    return ref if own is None else replace(ref, header=replace(ref.header, **{f: own[f] for f in _OWN_FIELDS
                                                                              if f in own}))
