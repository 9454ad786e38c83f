"""Importing an expert package (issue 37, docs/experts.md): a recorded run of kind `import` whose product
is the package's SVF expert, stored under its content id and listed in the catalog's experts.

Why a run: the catalog then says where each expert came from (the package's expert id, the run that
trained it in the exporting T2_HOME, its record), and importing the same package again is found done,
like any run, by its id, which hashes only the expert's id. The package is verified when the run is
planned (`t2core.export.read_package`), before anything is written; no model is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from t2core.artifacts import ArtifactStore
from t2core.experts import KIND, ExpertRef, run_expert
from t2core.export.package import Package, install, read_package, store_key
from t2core.ids import content_id
from t2core.models.registry import LoadedModel
from t2core.svf import expert_origin
from t2core.variants import VariantRef
from t2ops.operation import Hooks, OperationBase, Produced, Recorded, register_operation
from t2ops.records import ImportRecord, RunRow


@dataclass(frozen=True)
class ImportRequest:
    package: str  # the package's directory


@dataclass(frozen=True)
class ImportPlan:
    run_id: str
    row: RunRow
    outputs: tuple[tuple[str, str], ...]
    pkg: Package  # verified


@dataclass(frozen=True)
class ImportOutcome:
    run_id: str
    expert_id: str
    path: str
    task: str
    model: str
    reused: bool  # this package was imported before


def import_run_id(expert_id: str) -> str:
    return "import-" + content_id(["import", expert_id])


class ImportOp(OperationBase):
    name = "import"

    def plan(self, req: ImportRequest, ident=None) -> ImportPlan:
        """The verified package and the run id (no model: the package names its own)."""
        pkg = read_package(req.package)
        h, man = pkg.header, pkg.manifest
        run_id = import_run_id(pkg.expert_id)
        source = man.get("record", {}).get("catalog", {}).get("expert", {})
        config = {"package": {"expert_id": pkg.expert_id, "format": man["format"],
                              "exported_by": man.get("exported_by"), "source_run_id": source.get("run_id"),
                              "from": str(Path(req.package).expanduser().resolve())}}
        row = RunRow(run_id=run_id, kind="import", model=pkg.alias, weights_hash=pkg.weights_hash, task=h.task,
                     config=config, data_files=h.data_files, variant=VariantRef("svf", (pkg.expert_id,)))
        return ImportPlan(run_id, row, ((KIND, store_key(pkg)),), pkg)

    def done(self, plan: ImportPlan, recorded: Recorded) -> ImportOutcome:
        ref = run_expert(ArtifactStore(), store_key(plan.pkg))
        return self._outcome(plan, ref, True)

    def run(self, plan: ImportPlan, loaded: LoadedModel | None, deps: dict, hooks: Hooks) -> Produced[ImportOutcome]:
        ref = install(plan.pkg)
        h = ref.header
        source = plan.pkg.manifest.get("record", {}).get("catalog", {}).get("expert", {})
        metrics = source.get("metrics") or h.metrics  # as the exporting catalog listed them, else the header's
        rec = ImportRecord(plan.row, ref.id, str(ref.path), h.svf.get("targets", "mlp"), expert_origin(h),
                           {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)})
        return Produced(self._outcome(plan, ref, False), (rec,))

    @staticmethod
    def _outcome(plan: ImportPlan, ref: ExpertRef, reused: bool) -> ImportOutcome:
        return ImportOutcome(plan.run_id, ref.id, str(ref.path), ref.header.task, plan.pkg.alias, reused)

    def footprint(self, req: ImportRequest, ctx):
        """One expert file copied into the store: kilobytes, no model work (t2core/plan/)."""
        from t2core.plan import footprint as fp
        from t2core.plan.work import Work

        return Work(fp.Footprint((), disk=4 * ctx.shape.ranks("mlp")), local=False)


OP = register_operation(ImportOp())
