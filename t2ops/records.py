"""What an operation hands the catalog: its run row and typed records, as plain data.

An operation's `run` returns records and never writes them (t2ops/operation.py): the process that
holds the catalog, this one or the single writer of a cluster, applies them all of a run in one
transaction (`catalog.execute`), so a run is recorded whole or not at all. Records pickle across
processes; each is written by content key, so applying one twice (a rerun after a crash) never
duplicates a row. How each is written is `catalog/records.py`; t2ops never imports the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from t2core.evaluate import EvalResult
from t2core.hashing import config_hash
from t2core.svd import SVDInfo
from t2core.variants import BASE_REF, VariantRef


@dataclass(frozen=True)
class RunRow:
    """What the `runs` table says about one run, fixed when the run is planned.

    `variant` is what was applied (evaluations) or produced (training); `strategy` the
    adaptation strategy that chose the experts (paper §3.3), when one did."""

    run_id: str
    kind: str  # eval | svd | train | adapt | select | transfer
    model: str
    weights_hash: str
    task: str | None = None
    task_version: str | None = None
    split: str | None = None
    config: dict = field(default_factory=dict)
    data_files: dict = field(default_factory=dict)
    seed: int = 0
    variant: VariantRef = BASE_REF
    strategy: str | None = None

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)


@dataclass(frozen=True)
class ModelRecord:
    weights_hash: str
    alias: str
    source: str
    n_params: int


@dataclass(frozen=True)
class DecompositionRecord:
    """An SVD artifact (paper §3.1) and its `svd` run row (id = svd-<key>), once: a decomposition already
    catalogued is left as it is."""

    info: SVDInfo
    model: str
    seed: int = 0


@dataclass(frozen=True)
class EvalRecord:
    """A finished evaluation: run row, metrics, per-sample rows (with what answered each: experts, mixing
    weights, the strategy's decision) and dataset hashes."""

    res: EvalResult
    n_records: int | None = None


@dataclass(frozen=True)
class RunMetrics:
    """Metrics of how a run ran (its peak memory, t2core/memory.py), added beside the ones its own
    record writes: written after it, they replace only their own names."""

    run_id: str
    values: dict


@dataclass(frozen=True)
class CopiedEval:
    """Run `row` completed with the metrics and samples of the completed run `source`: an evaluation whose
    weights are bitwise `source`'s (an SVF expert with z = 1 is the base model), so its rows say what ran
    without running it twice. The config names the source (`same_as`); the samples carry this run's experts."""

    source: str
    row: RunRow


@dataclass(frozen=True)
class TrainingRecord:
    """A finished training run: run row, metrics, learning curve (REINFORCE) and the expert or adapter it
    made. `row.variant` names the product; `targets` and `origin` come from its method (t2core/methods)."""

    row: RunRow
    expert_id: str
    path: str
    targets: str
    origin: str
    metrics: dict
    seconds: float | None = None
    curve: tuple[dict, ...] = ()


@dataclass(frozen=True)
class ImportRecord:
    """An imported expert package (t2ops/expert_import.py): the `import` run and, unless the catalog already
    lists the expert (it was trained or imported here before), its `experts` row, linked to this run."""

    row: RunRow
    expert_id: str
    path: str
    targets: str
    origin: str
    metrics: dict


@dataclass(frozen=True)
class SearchRecord:
    """A finished few-shot search (paper §3.3; `res`: `t2core.adapt.search.SearchResult`): the run (its
    config gains α and where the search stopped), its fitness metrics, its per-generation curve, and the
    mixture as an expert."""

    row: RunRow
    res: object


@dataclass(frozen=True)
class PickRecord:
    """A finished choice among adapters on the few-shot prompts: the scores and the pick in the config."""

    row: RunRow
    scores: dict
    picked: str


@dataclass(frozen=True)
class TransferRecord:
    """A finished transfer (paper §4.4): the run (its config gains the destination expert and the mapping)
    and the expert it made, an `experts` row of the destination model linked to this run."""

    row: RunRow
    ref: object  # the destination expert (t2core.experts.ExpertRef)
