"""Writing t2core results into the catalog, each in one transaction.

Rows are keyed by content (run ids, weights hashes, decomposition keys) and written
with INSERT OR REPLACE / delete-then-insert, so recording the same thing twice (a
rerun after a crash) never duplicates rows. Every run row is written by one statement
(`_upsert_run`) from one typed `RunRow`, whatever the operation.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from catalog.db import Catalog
from t2core import threads
from t2core.adapters import ORIGINS as ADAPTER_ORIGINS
from t2core.evaluate import EvalResult
from t2core.hashing import config_hash, git_sha
from t2core.models.registry import LoadedModel
from t2core.safe_text import storable
from t2core.svd import SVDInfo
from t2core.variants import BASE_REF, VariantRef

# the columns `record_eval` writes and `copy_eval` copies, in this order
_SAMPLE_COLUMNS = "run_id, idx, sample_id, prompt, output, parsed, target, correct, detail, expert_ids, alphas, decision"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class RunRow:
    """What the `runs` table says about one run, fixed when the run is planned.

    `variant` is what was applied (evaluations) or produced (training); `strategy` the
    adaptation strategy that chose the experts (paper §3.3), when one did."""

    run_id: str
    kind: str  # eval | svd | train
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


def _upsert_run(con, row: RunRow, status: str, seconds: float | None = None, error: str | None = None) -> None:
    """The one statement that writes a run row (started_at kept from the first attempt's row)."""
    v = row.variant
    finished = _now() if status != "running" else None
    con.execute(
        "INSERT OR REPLACE INTO runs (run_id, kind, model, weights_hash, task, task_version, split, config_hash,"
        " config_json, data_hashes, git_sha, seed, status, error, started_at, finished_at, seconds, variant, method,"
        " expert_ids, alphas, strategy, threads) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
        " coalesce((SELECT started_at FROM runs WHERE run_id = ? AND ? <> 'running'), ?),?,?,?,?,?,?,?,?)",
        [row.run_id, row.kind, row.model, row.weights_hash, row.task, row.task_version, row.split, row.config_hash,
         json.dumps(row.config, sort_keys=True, default=str), json.dumps(row.data_files, sort_keys=True), git_sha(),
         row.seed, status, error, row.run_id, status, _now(), finished, seconds, v.name, v.method,
         list(v.expert_ids), list(v.alphas), row.strategy, threads.current()],
    )


def record_model(cat: Catalog, loaded: LoadedModel) -> None:
    cat.write(lambda con: con.execute(
        "INSERT OR IGNORE INTO models (weights_hash, alias, source, n_params) VALUES (?, ?, ?, ?)",
        [loaded.weights_hash, loaded.alias, loaded.source, loaded.n_params],
    ))


def record_decomposition(cat: Catalog, info: SVDInfo) -> bool:
    """Record an SVD artifact; returns False when it was already catalogued (nothing written)."""

    def tx(con) -> bool:
        if con.execute("SELECT count(*) FROM decompositions WHERE decomp_key = ?", [info.key]).fetchall()[0][0]:
            return False
        con.execute(
            "INSERT INTO decompositions (decomp_key, weights_hash, targets, path, n_matrices, bytes, seconds, max_error)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [info.key, info.weights_hash, info.targets, str(info.path), info.n_matrices, info.bytes, info.seconds,
             info.max_error],
        )
        con.executemany(
            "INSERT OR REPLACE INTO decomposition_matrices VALUES (?, ?, ?, ?, ?)",
            [[info.key, n, info.shapes[n][0], info.shapes[n][1], e] for n, e in info.max_errors.items()],
        )
        return True

    return cat.write(tx)


def is_completed(cat: Catalog, run_id: str) -> bool:
    _, rows = cat.query("SELECT count(*) FROM runs WHERE run_id = ? AND status = 'completed'", [run_id])
    return bool(rows[0][0])


def metric(cat: Catalog, run_id: str, name: str) -> float | None:
    _, rows = cat.query("SELECT value FROM metrics WHERE run_id = ? AND name = ?", [run_id, name])
    return rows[0][0] if rows else None


def metrics(cat: Catalog, run_id: str) -> dict[str, float]:
    _, rows = cat.query("SELECT name, value FROM metrics WHERE run_id = ?", [run_id])
    return dict(rows)


def start_run(cat: Catalog, row: RunRow) -> None:
    """Mark a run as running (replacing a failed or interrupted attempt with the same id)."""
    cat.write(lambda con: _upsert_run(con, row, "running"))


def fail_run(cat: Catalog, run_id: str, error: str) -> None:
    cat.write(lambda con: con.execute(
        "UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE run_id = ?",
        [error[-2000:], _now(), run_id],
    ))


def eval_row(res: EvalResult) -> RunRow:
    """The run row of a finished evaluation, from the result itself."""
    return RunRow(run_id=res.run_id, kind=res.kind, model=res.model, weights_hash=res.weights_hash, task=res.task,
                  task_version=res.task_version, split=res.split, config=res.config, data_files=res.data_files,
                  seed=res.seed, variant=res.ref, strategy=res.strategy)


def record_eval(cat: Catalog, res: EvalResult, n_records: int | None = None) -> None:
    """Store a finished evaluation: run row, metrics, per-sample rows (with what answered each: experts,
    mixing weights, the strategy's decision) and dataset hashes, atomically."""
    row = eval_row(res)

    def tx(con) -> None:
        _upsert_run(con, row, "completed", seconds=res.seconds)
        con.execute("DELETE FROM metrics WHERE run_id = ?", [res.run_id])
        con.executemany("INSERT INTO metrics VALUES (?, ?, ?)",
                        [[res.run_id, k, float(v)] for k, v in res.metrics.items()])
        con.execute("DELETE FROM samples WHERE run_id = ?", [res.run_id])
        con.executemany(
            f"INSERT INTO samples ({_SAMPLE_COLUMNS}) VALUES ({', '.join('?' * len(_SAMPLE_COLUMNS.split(',')))})",
            [[res.run_id, s.idx, s.sample_id, *map(storable, (s.prompt, s.output, s.parsed, s.target)), s.correct,
              storable(s.detail),
              list(s.expert_ids if s.expert_ids is not None else res.ref.expert_ids),
              list(s.alphas if s.alphas is not None else res.ref.alphas), s.decision]
             for s in res.samples],
        )
        for f, h in res.data_files.items():
            con.execute("INSERT OR IGNORE INTO datasets (task, split, file, sha256, n_records) VALUES (?,?,?,?,?)",
                        [res.task, res.split, f, h, n_records])

    cat.write(tx)


def copy_eval(cat: Catalog, src_run_id: str, row: RunRow) -> None:
    """Record run `row` as completed with the metrics and samples of the completed run `src_run_id`,
    atomically: for an evaluation whose weights are bitwise those of `src_run_id`'s (an SVF expert
    with z = 1 is the base model), so its rows say what ran without running it twice. The config
    names the source (`same_as`); the samples carry this run's experts."""
    from dataclasses import replace as _replace

    row = _replace(row, config={**row.config, "same_as": src_run_id})
    v = row.variant

    def tx(con) -> None:
        _upsert_run(con, row, "completed", seconds=0.0)
        con.execute("DELETE FROM metrics WHERE run_id = ?", [row.run_id])
        con.execute("INSERT INTO metrics SELECT ?, name, value FROM metrics WHERE run_id = ?",
                    [row.run_id, src_run_id])
        con.execute("DELETE FROM samples WHERE run_id = ?", [row.run_id])
        con.execute(
            f"INSERT INTO samples ({_SAMPLE_COLUMNS}) SELECT ?, idx, sample_id, prompt, output, parsed, target, correct,"
            " detail, ?, ?, decision FROM samples WHERE run_id = ?",
            [row.run_id, list(v.expert_ids), list(v.alphas), src_run_id])

    cat.write(tx)


def record_svd_run(cat: Catalog, loaded: LoadedModel, info: SVDInfo, seed: int = 0) -> None:
    """An `svd` run row (id = decomposition key) so `t2 catalog runs` shows when SVD happened."""
    row = RunRow(run_id=f"svd-{info.key}", kind="svd", model=loaded.alias, weights_hash=loaded.weights_hash,
                 config={"targets": info.targets}, seed=seed)

    def tx(con) -> None:
        if con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [row.run_id]).fetchall()[0][0]:
            return
        _upsert_run(con, row, "completed", seconds=info.seconds)
        con.execute("INSERT OR IGNORE INTO metrics VALUES (?, 'max_recon_error', ?)", [row.run_id, info.max_error])

    cat.write(tx)


def train_row(loaded: LoadedModel, cfg, run_id: str, data_files: dict[str, str], seed: int,
              produced: VariantRef | None = None) -> RunRow:
    """The run row of a training run (RLConfig or NTPConfig `cfg`); `produced`: the expert or adapter it made."""
    from t2core.tasks import get_task

    method = cfg.method if type(cfg).__name__ == "NTPConfig" or cfg.method == "svf" else f"{cfg.method}-pg"
    return RunRow(run_id=run_id, kind="train", model=loaded.alias, weights_hash=loaded.weights_hash, task=cfg.task,
                  task_version=get_task(cfg.task).version, split="train", config=asdict(cfg), data_files=data_files,
                  seed=seed, variant=produced or VariantRef(method))


def record_training(cat: Catalog, *, row: RunRow, record: dict, expert_path: str) -> None:
    """A finished REINFORCE run: run row, metrics, learning curve and the expert, atomically.
    `record`: `t2core.training.experts.training_record` (metrics, curve, seconds), as plain data."""
    best = {k: float(v) for k, v in record["metrics"].items()}
    v = row.variant

    def tx(con) -> None:
        _upsert_run(con, row, "completed", seconds=record["seconds"])
        con.execute("DELETE FROM metrics WHERE run_id = ?", [row.run_id])
        con.executemany("INSERT INTO metrics VALUES (?, ?, ?)", [[row.run_id, k, x] for k, x in best.items()])
        con.execute("DELETE FROM curves WHERE run_id = ?", [row.run_id])
        con.executemany(
            "INSERT INTO curves VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[row.run_id, c["step"], c["mean_reward"], c["train_acc"], c["kl"], c["loss"], c["grad_norm"],
              c["valid_acc"], c["wall_s"], c["tokens"]] for c in record["curve"]],
        )
        targets = row.config["svf"]["targets"] if v.method == "svf" else "q_proj,v_proj"
        origin = "svf-pg" if v.method == "svf" else ADAPTER_ORIGINS[v.method]
        _upsert_expert(con, v, row, targets, expert_path, best, origin)

    cat.write(tx)


def _upsert_expert(con, v: VariantRef, row: RunRow, targets: str, path: str, metrics: dict, origin: str) -> None:
    """`origin`: how the expert was made, as its maker says (an SVF expert's header holds the same)."""
    con.execute(
        "INSERT OR REPLACE INTO experts (expert_id, weights_hash, task, method, targets, path, run_id, metrics_json,"
        " origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [v.name if v.method != "svf" else v.expert_ids[0], row.weights_hash, row.task, v.method, targets, path,
         row.run_id, json.dumps(metrics), origin])


def record_adapter(cat: Catalog, *, row: RunRow, res) -> None:
    """A trained PEFT baseline adapter (NTPConfig): run row (kind train), loss metrics, expert row.
    A reused adapter already recorded is left as it is."""
    if res.reused and is_completed(cat, row.run_id):
        return
    metrics = {"n_trainable": float(res.n_trainable), "steps": float(len(res.losses))}
    if res.losses:
        metrics.update(first_loss=res.losses[0], final_loss=res.losses[-1])

    def tx(con) -> None:
        _upsert_run(con, row, "completed", seconds=res.seconds)
        con.execute("DELETE FROM metrics WHERE run_id = ?", [row.run_id])
        con.executemany("INSERT INTO metrics VALUES (?, ?, ?)",
                        [[row.run_id, k, float(v)] for k, v in metrics.items()])
        targets = row.config["svf_targets"] if row.variant.method == "svf" else ",".join(row.config["target_modules"])
        method = row.variant.method
        _upsert_expert(con, row.variant, row, targets, str(res.path), metrics,
                       "svf-ntp" if method == "svf" else ADAPTER_ORIGINS[method])

    cat.write(tx)


def record_search(cat: Catalog, row: RunRow, res) -> None:
    """A finished few-shot search (`t2core.adapt.search.SearchResult`): the run (its config gains α and
    where the search stopped), its fitness metrics, its per-generation curve, and the mixture as an expert."""
    from dataclasses import replace as _replace

    mix = res.expert.header.config["mixture"]
    row = _replace(row, config={**row.config, "alpha": mix["alpha"], "stopped": mix["stopped"],
                                "expert": res.expert.id})
    m = {k: float(v) for k, v in res.expert.header.metrics.items()}

    def tx(con) -> None:
        _upsert_run(con, row, "completed", seconds=res.seconds)
        con.execute("DELETE FROM metrics WHERE run_id = ?", [row.run_id])
        con.executemany("INSERT INTO metrics VALUES (?, ?, ?)", [[row.run_id, k, v] for k, v in m.items()])
        con.execute("DELETE FROM curves WHERE run_id = ?", [row.run_id])
        con.executemany(  # one curve point per generation: valid_acc = the best fitness's accuracy so far
            "INSERT INTO curves (run_id, step, mean_reward, train_acc, valid_acc) VALUES (?, ?, ?, ?, ?)",
            [[row.run_id, h["generation"], h["mean_accuracy"], h["elite_accuracy"], h["best"][0]]
             for h in mix["history"]])
        _upsert_expert(con, VariantRef("svf", (res.expert.id,)), row, res.expert.header.svf["targets"],
                       str(res.expert.path), m, "few-shot-mixture")

    cat.write(tx)


def record_pick(cat: Catalog, row: RunRow, scores: dict, picked: str) -> None:
    """A finished choice among adapters on the few-shot prompts: the scores and the pick in the config."""
    from dataclasses import replace as _replace

    row = _replace(row, config={**row.config, "scores": {k: list(v) for k, v in scores.items()}, "picked": picked},
                   variant=VariantRef.parse(picked))

    def tx(con) -> None:
        _upsert_run(con, row, "completed")
        con.execute("DELETE FROM metrics WHERE run_id = ?", [row.run_id])
        con.execute("INSERT INTO metrics VALUES (?, 'picked_accuracy', ?)", [row.run_id, float(scores[picked][0])])

    cat.write(tx)


def record_transfer(cat: Catalog, row: RunRow, ref) -> None:
    """A finished transfer: the run (its config gains the destination expert and the mapping) and the
    expert it made (an `experts` row of the destination model, linked to this run)."""
    from dataclasses import replace as _replace

    t = ref.header.config["transfer"]
    v = VariantRef("svf", (ref.id,))
    row = _replace(row, config={**row.config, "expert": ref.id, "mapping": t["mapping"]}, variant=v)

    def tx(con) -> None:
        _upsert_run(con, row, "completed")
        con.execute("DELETE FROM metrics WHERE run_id = ?", [row.run_id])
        con.executemany("INSERT INTO metrics VALUES (?, ?, ?)",
                        [[row.run_id, k, float(x)] for k, x in ref.header.metrics.items()])
        _upsert_expert(con, v, row, ref.header.svf.get("targets", "mlp"), str(ref.path), ref.header.metrics,
                       "transfer")

    cat.write(tx)
