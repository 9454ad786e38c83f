"""Cross-model transfer (paper §4.4): a source model's SVF experts become experts of a destination
model, each a recorded run of kind `transfer` whose product is an ordinary destination expert.

One run per (source expert, destination weights, control, seed). Its id hashes exactly those, so a
rerun finds the stored expert and the catalog row; nothing needs the destination's weights beyond
its identity (`ModelIdent`: weights hash and the length of each matrix's vector).
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog import Catalog
from catalog import records as rec
from t2core.artifacts import ArtifactStore
from t2core.errors import ConfigError
from t2core.experts import FILE, KIND, ExpertRef
from t2core.hashing import canonical_json, sha256_bytes
from t2core.models.registry import LoadedModel
from t2core.svf import save_expert
from t2core.transfer import CONTROLS, Destination, plan_mapping, transfer_expert
from t2ops.lifecycle import recorded
from t2ops.model import ModelIdent

VERSION = 1  # bump when the mapping or a control changes what a transfer produces


@dataclass(frozen=True)
class TransferRequest:
    expert: str  # the source expert: svf:<hex> (a unique prefix) or an expert file
    control: str = "ordered"  # ordered (the transfer), shuffled (the paper's control), random (magnitude-matched)
    seed: int = 0  # of the shuffle / random draw

    def __post_init__(self) -> None:
        CONTROLS.get(self.control)  # an unknown control fails here, with the known ones


@dataclass(frozen=True)
class TransferOutcome:
    run_id: str
    expert_id: str  # the destination expert
    source: str  # the source expert
    source_model: str
    task: str
    control: str
    mapping: str  # same-shapes | relative-depth
    reused: bool


def destination(ident: ModelIdent, targets: str) -> Destination:
    return Destination(ident.alias, ident.weights_hash, ident.target_ranks(targets))


def plan(req: TransferRequest, dst: ModelIdent) -> tuple[str, ExpertRef]:
    """(run id, the verified source expert): no model needed."""
    src = ExpertRef.resolve(req.expert)
    if src.header.base_weights_hash == dst.weights_hash:
        raise ConfigError(f"expert {src.id} is already an expert of {dst.alias}; transfer moves an expert to "
                          "another model (--dst).")
    plan_mapping(dict(src.header.ranks), destination(dst, src.header.svf.get("targets", "mlp")).ranks)  # refuses early
    payload = ["transfer", VERSION, src.id, dst.weights_hash, req.control, req.seed]
    return "transfer-" + sha256_bytes(canonical_json(payload).encode())[:24], src


def run(req: TransferRequest, loaded: LoadedModel, cat: Catalog, ident: ModelIdent,
        store: ArtifactStore | None = None) -> TransferOutcome:
    """Map, store and record one transferred expert (or reuse the stored one)."""
    store = store or ArtifactStore()
    run_id, src = plan(req, ident)
    rec.record_model(cat, loaded)
    dst = destination(ident, src.header.svf.get("targets", "mlp"))

    def body() -> ExpertRef:
        if not store.exists(KIND, run_id):
            policy, header = transfer_expert(src, dst, req.control, req.seed)
            store.write(KIND, run_id, lambda tmp: (save_expert(tmp / FILE, policy, header), {"task": header.task})[1],
                        meta={"weights_hash": dst.weights_hash})
        return ExpertRef.resolve(str(store.path(KIND, run_id) / FILE), store)

    reused = rec.is_completed(cat, run_id) and store.exists(KIND, run_id)
    if reused:
        out = body()
    else:
        row = rec.RunRow(run_id=run_id, kind="transfer", model=dst.alias, weights_hash=dst.weights_hash,
                         task=src.header.task, config={"source_expert": src.id, "source_model": src.header.model,
                                                       "source_weights_hash": src.header.base_weights_hash,
                                                       "control": req.control, "seed": req.seed, "version": VERSION},
                         seed=req.seed)
        out = recorded(cat, row, body, lambda ref: rec.record_transfer(cat, row, ref))
    t = out.header.config["transfer"]
    return TransferOutcome(run_id, out.id, src.id, src.header.model, src.header.task, req.control,
                           t["mapping"]["kind"], reused)


def source_experts(cat: Catalog, model: str, tasks: tuple[str, ...] | None = None, targets: str = "mlp") -> list[str]:
    """The SVF experts `model` trained itself by REINFORCE on `targets` (one per task; no few-shot
    mixtures, no transferred experts, no SVF-NTP, no classification expert), from the catalog; a clear
    error when there are none."""
    _, rows = cat.query(  # NTP runs' configs (NTPConfig) carry svf_targets; REINFORCE runs' (RLConfig) do not
        "SELECT e.expert_id, e.task FROM experts e JOIN runs r ON r.run_id = e.run_id JOIN models m"
        " ON m.weights_hash = e.weights_hash WHERE m.alias = ? AND e.method = 'svf' AND r.kind = 'train'"
        " AND r.status = 'completed' AND e.task <> 'dispatch' AND e.targets = ?"
        " AND json_extract_string(r.config_json, '$.svf_targets') IS NULL ORDER BY r.finished_at", [model, targets])
    by_task: dict[str, list[str]] = {}
    for eid, task in rows:
        if tasks is None or task in tasks:
            by_task.setdefault(task, []).append(eid)
    if not by_task:
        want = ", ".join(tasks) if tasks else "gsm8k, mbpp, arc_easy"
        raise ConfigError(f"no experts for {model} in the catalog{' on ' + want if tasks else ''}: train them with "
                          f"`t2 train --model {model} --task <task>` ({want}), or `t2 run full-paper` with a profile "
                          f"of {model}.")
    several = {t: ids for t, ids in by_task.items() if len(set(ids)) > 1}
    if several:
        t, ids = next(iter(several.items()))
        raise ConfigError(f"{model} has {len(set(ids))} experts for {t} ({', '.join(sorted(set(ids)))}); name the ones "
                          "to transfer with --experts.")
    return [ids[0] for _, ids in sorted(by_task.items())]
