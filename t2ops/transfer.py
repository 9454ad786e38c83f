"""Cross-model transfer (paper §4.4): a source model's SVF experts become experts of a destination
model, each a recorded run of kind `transfer` whose product is an ordinary destination expert.

One run per (source expert, destination weights, control, seed). Its id hashes exactly those, so a
rerun finds the stored expert and the catalog row; nothing needs the destination's weights beyond
its identity (`ModelIdent`: weights hash and the length of each matrix's vector).
"""

from __future__ import annotations

from dataclasses import dataclass

from t2core.artifacts import ArtifactStore
from t2core.errors import ConfigError
from t2core.experts import KIND, ExpertRef, run_expert, store_expert
from t2core.ids import content_id
from t2core.models.registry import LoadedModel
from t2core.transfer import CONTROLS, Destination, plan_mapping, transfer_expert
from t2ops.model import ModelIdent
from t2ops.operation import Hooks, OperationBase, Produced, Recorded, register_operation
from t2ops.records import RunRow, TransferRecord

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


@dataclass(frozen=True)
class TransferPlan:
    run_id: str
    row: RunRow
    outputs: tuple[tuple[str, str], ...]
    req: TransferRequest
    src: ExpertRef  # the source expert, verified
    dst: Destination


class TransferOp(OperationBase):
    name = "transfer"

    def plan(self, req: TransferRequest, ident: ModelIdent) -> TransferPlan:
        """The run id and the verified source expert: no model needed."""
        src = ExpertRef.resolve(req.expert)
        if src.header.base_weights_hash == ident.weights_hash:
            raise ConfigError(f"expert {src.id} is already an expert of {ident.alias}; transfer moves an expert to "
                              "another model (--dst).")
        dst = destination(ident, src.header.svf.get("targets", "mlp"))
        plan_mapping(dict(src.header.ranks), dst.ranks)  # refuses early
        payload = ["transfer", VERSION, src.id, ident.weights_hash, req.control, req.seed]
        run_id = "transfer-" + content_id(payload)
        row = RunRow(run_id=run_id, kind="transfer", model=dst.alias, weights_hash=dst.weights_hash,
                     task=src.header.task, config={"source_expert": src.id, "source_model": src.header.model,
                                                   "source_weights_hash": src.header.base_weights_hash,
                                                   "control": req.control, "seed": req.seed, "version": VERSION},
                     seed=req.seed)
        return TransferPlan(run_id, row, ((KIND, run_id),), req, src, dst)

    def done(self, plan: TransferPlan, recorded: Recorded) -> TransferOutcome:
        return self._outcome(plan, run_expert(ArtifactStore(), plan.run_id), True)

    def run(self, plan: TransferPlan, loaded: LoadedModel | None, deps: dict, hooks: Hooks
            ) -> Produced[TransferOutcome]:
        """Map and store one transferred expert (or find it stored); nothing needs the destination's weights."""
        store = ArtifactStore()
        if not store.exists(KIND, plan.run_id):
            policy, header = transfer_expert(plan.src, plan.dst, plan.req.control, plan.req.seed)
            store_expert(store, plan.run_id, policy, header,
                         meta={"weights_hash": plan.dst.weights_hash, "task": header.task})
        ref = run_expert(store, plan.run_id)
        return Produced(self._outcome(plan, ref, False), (TransferRecord(plan.row, ref),))

    @staticmethod
    def _outcome(plan: TransferPlan, ref: ExpertRef, reused: bool) -> TransferOutcome:
        src = plan.src
        return TransferOutcome(plan.run_id, ref.id, src.id, src.header.model, src.header.task, plan.req.control,
                               ref.header.config["transfer"]["mapping"]["kind"], reused)

    def footprint(self, req: TransferRequest, ctx):
        """Vectors moved between two models' singular values: kilobytes (t2core/plan/)."""
        from t2core.plan import footprint as fp
        from t2core.plan.work import Work

        return Work(fp.Footprint((), disk=4 * ctx.shape.ranks("mlp")), local=False)


OP = register_operation(TransferOp())
