"""Train an SVF expert end to end and store it in the artifact store; find stored experts.

Experts live at `T2_HOME/artifacts/experts/<run id>/expert.safetensors` (content-addressed
by the training run id: base weights, RL config, task version, data hashes), written
atomically with a verified manifest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from t2core.artifacts import ArtifactStore
from t2core.errors import ArtifactError
from t2core.hashing import canonical_json, sha256_bytes, tensors_hash
from t2core.models.registry import LoadedModel
from t2core.paths import t2_home
from t2core.rl import CurvePoint, ReinforceTrainer, RLConfig, TrainResult, plan_training
from t2core.svd import ensure_svd, load_svd
from t2core.svf import ExpertHeader, SVFPolicy, read_header, save_expert

KIND = "experts"
FILE = "expert.safetensors"


@dataclass
class TrainedExpert:
    expert_id: str
    path: Path
    result: TrainResult | None  # None when the stored expert was reused
    seconds: float


def is_stored(run_id: str, method: str, store: ArtifactStore | None = None) -> bool:
    """Whether training run `run_id` already has its result in the store (SVF expert or LoRA-PG adapter)."""
    from t2core.baselines.peft_ntp import KIND as ADAPTERS

    return (store or ArtifactStore()).exists(KIND if method == "svf" else ADAPTERS, run_id)


def expert_id_for(run_id: str, task: str) -> str:
    return f"{task}-{run_id[:16]}"


def train_expert(loaded: LoadedModel, cfg: RLConfig, data_dir: str | Path | None = None,
                 store: ArtifactStore | None = None, on_log: Callable[[CurvePoint], None] | None = None,
                 sampler=None, on_start: Callable[[str, dict[str, str]], None] | None = None) -> TrainedExpert:
    """SVD (cached) → REINFORCE (resumable) → expert file (atomic). Reuses a stored expert.

    `on_start(run_id, data_files)` is called once training is about to run (never on reuse),
    e.g. to show the run as `running` in the catalog.
    """
    store = store or ArtifactStore()
    planned = plan_training(loaded, cfg, data_dir)
    run_id = planned[2]
    if cfg.method != "svf":
        return _train_peft_pg(loaded, planned, cfg, data_dir, store, sampler, on_log, on_start)
    eid = expert_id_for(run_id, cfg.task)
    if store.exists(KIND, run_id):  # reuse: no trainer, no SVD load
        store.verify(KIND, run_id)
        return TrainedExpert(eid, store.path(KIND, run_id) / FILE, None, 0.0)
    if on_start:
        on_start(run_id, planned[1])
    svd = load_svd(ensure_svd(loaded, cfg.svf.targets, store=store), store=store)
    trainer = _trainer(loaded, svd, cfg, data_dir, sampler, on_log, planned)
    t0 = time.perf_counter()
    res = trainer.fit()
    seconds = time.perf_counter() - t0
    header = ExpertHeader(
        base_weights_hash=loaded.weights_hash, model=loaded.alias, task=cfg.task, svf=asdict(cfg.svf),
        ranks={n: int(svd[n][1].shape[0]) for n in svd}, data_files=res.data_files, config=asdict(cfg),
        metrics={"base_valid": res.base_valid, "best_valid": res.best_valid, "best_step": res.best_step})

    def write(tmp: Path) -> dict:
        save_expert(tmp / FILE, res.policy, header)
        return {"expert_id": eid, "task": cfg.task}

    store.write(KIND, trainer.run_id, write, meta={"weights_hash": loaded.weights_hash})
    return TrainedExpert(eid, store.path(KIND, trainer.run_id) / FILE, res, seconds)


def _trainer(loaded, svd, cfg, data_dir, sampler, on_log, planned) -> ReinforceTrainer:
    trainer = ReinforceTrainer(loaded, svd, cfg, data_dir, sampler=sampler, on_log=on_log, planned=planned)
    trainer.checkpoint_dir = t2_home() / "checkpoints" / cfg.method / trainer.run_id  # keyed by run id: resumable
    return trainer


def _train_peft_pg(loaded: LoadedModel, planned, cfg: RLConfig, data_dir, store: ArtifactStore, sampler,
                   on_log, on_start) -> TrainedExpert:
    """LoRA-PG: the same REINFORCE loop on a PEFT LoRA; saved in PEFT format under `adapters/`."""
    from t2core.baselines.peft_ntp import KIND as ADAPTERS
    from t2core.baselines.peft_ntp import NTPConfig, _peft, with_adapter

    aid = planned[2]
    if store.exists(ADAPTERS, aid):
        store.verify(ADAPTERS, aid)
        return TrainedExpert(f"{cfg.method}-pg-{aid}", store.path(ADAPTERS, aid), None, 0.0)
    if on_start:
        on_start(aid, planned[1])
    trainer = _trainer(loaded, None, cfg, data_dir, sampler, on_log, planned)  # LoRA needs no SVD
    t0 = time.perf_counter()
    res = trainer.fit()
    seconds = time.perf_counter() - t0
    with with_adapter(loaded, cfg=NTPConfig(task=cfg.task, seed=cfg.seed)) as lm:
        _peft().set_peft_model_state_dict(lm.model, res.best_state)

        def write(tmp: Path) -> dict:
            lm.model.save_pretrained(str(tmp))
            return {"method": f"{cfg.method}-pg", "task": cfg.task}

        store.write(ADAPTERS, aid, write, meta={"weights_hash": loaded.weights_hash, "config": asdict(cfg)})
    return TrainedExpert(f"{cfg.method}-pg-{aid}", store.path(ADAPTERS, aid), res, seconds)


def expert_variant(header: ExpertHeader, policy: SVFPolicy) -> str:
    """The catalog variant of evaluations run with an expert: "svf:<content id>".

    The id hashes what the expert *is* (base weights, parameterisation, the vectors), never
    where its file lies: two experts in folders of the same name get different ids, and the same
    expert copied elsewhere keeps its id."""
    digest = header.vectors_sha256 or tensors_hash(policy.raw_state())
    return "svf:" + sha256_bytes(canonical_json([header.base_weights_hash, header.svf, digest]).encode())[:24]


def resolve_expert(ref: str, store: ArtifactStore | None = None) -> Path:
    """An expert file from a path, or from an expert id (`<task>-<run id prefix>`) in the store.

    A stored expert is verified against its manifest; a file elsewhere must carry the checksum
    of its vectors (checked by `load_expert`), so no expert is used unverified."""
    store = store or ArtifactStore()
    p = Path(ref).expanduser()
    if p.is_file():
        stored = p.resolve().parent.parent == (store.root / KIND).resolve()
        if stored:
            store.verify(KIND, p.resolve().parent.name)
        elif not read_header(p).vectors_sha256:
            raise ArtifactError(f"expert file {p} has no checksum of its vectors (written by an older t2), so it "
                                "cannot be verified outside the artifact store; use the stored copy (its expert id "
                                "from `t2 catalog ls experts`).")
        return p
    prefix = ref.split("-", 1)[1] if "-" in ref else ref
    hits = sorted((store.root / KIND).glob(f"{prefix}*/{FILE}")) if (store.root / KIND).is_dir() else []
    if len(hits) != 1:
        raise ArtifactError(f"expert {ref!r} matches {len(hits)} stored experts; pass a file path or an expert id "
                            "from `t2 catalog ls experts`.")
    store.verify(KIND, hits[0].parent.name)
    return hits[0]
