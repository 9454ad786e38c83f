"""How each record an operation returns (t2ops/records.py) is written: one writer per record type.

`write_records` applies all the records of a run in one transaction. Each writer keys its rows by
content (INSERT OR REPLACE / delete-then-insert), so writing a record twice never duplicates a row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

from catalog.db import Catalog
from catalog.runs import upsert_run
from t2core.safe_text import storable
from t2core.variants import VariantRef
from t2ops import records as r
from t2ops.records import RunRow

# the columns an evaluation writes and a copied one copies, in this order
_SAMPLE_COLUMNS = "run_id, idx, sample_id, prompt, output, parsed, target, correct, detail, expert_ids, alphas, decision"
_WRITERS: dict[type, Callable] = {}


def _writes(kind: type):
    def deco(fn):
        _WRITERS[kind] = fn
        return fn

    return deco


def _many(con, sql: str, rows: list) -> None:
    if rows:  # DuckDB refuses an empty executemany
        con.executemany(sql, rows)


def write_records(cat: Catalog, records) -> None:
    """Apply `records` in one transaction (retried whole on a lock or a conflict)."""
    records = tuple(records)
    unknown = [type(x).__name__ for x in records if type(x) not in _WRITERS]
    if unknown:
        raise TypeError(f"no catalog writer for {', '.join(unknown)}")
    if records:
        cat.write(lambda con: [_WRITERS[type(x)](con, x) for x in records])


def _metrics(con, run_id: str, values: dict) -> None:
    con.execute("DELETE FROM metrics WHERE run_id = ?", [run_id])
    _many(con, "INSERT INTO metrics VALUES (?, ?, ?)", [[run_id, k, float(v)] for k, v in values.items()])


def _expert(con, row: RunRow, expert_id: str, method: str, targets: str, path: str, metrics: dict,
            origin: str) -> None:
    """`origin`: how the expert was made, as its method says (an SVF expert's header holds the same)."""
    con.execute(
        "INSERT OR REPLACE INTO experts (expert_id, weights_hash, task, method, targets, path, run_id, metrics_json,"
        " origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [expert_id, row.weights_hash, row.task, method, targets, path, row.run_id, json.dumps(metrics), origin])


@_writes(r.ModelRecord)
def _model(con, m: r.ModelRecord) -> None:
    con.execute("INSERT OR IGNORE INTO models (weights_hash, alias, source, n_params) VALUES (?, ?, ?, ?)",
                [m.weights_hash, m.alias, m.source, m.n_params])


@_writes(r.DecompositionRecord)
def _decomposition(con, d: r.DecompositionRecord) -> None:
    info = d.info
    if not con.execute("SELECT count(*) FROM decompositions WHERE decomp_key = ?", [info.key]).fetchall()[0][0]:
        con.execute(
            "INSERT INTO decompositions (decomp_key, weights_hash, targets, path, n_matrices, bytes, seconds,"
            " max_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [info.key, info.weights_hash, info.targets, str(info.path), info.n_matrices, info.bytes, info.seconds,
             info.max_error])
        _many(con, "INSERT OR REPLACE INTO decomposition_matrices VALUES (?, ?, ?, ?, ?)",
                        [[info.key, n, info.shapes[n][0], info.shapes[n][1], e] for n, e in info.max_errors.items()])
    row = RunRow(run_id=f"svd-{info.key}", kind="svd", model=d.model, weights_hash=info.weights_hash,
                 config={"targets": info.targets}, seed=d.seed)
    if not con.execute("SELECT count(*) FROM runs WHERE run_id = ? AND status = 'completed'",
                       [row.run_id]).fetchall()[0][0]:
        upsert_run(con, row, "completed", seconds=info.seconds)
        con.execute("INSERT OR IGNORE INTO metrics VALUES (?, 'max_recon_error', ?)", [row.run_id, info.max_error])


@_writes(r.EvalRecord)
def _eval(con, e: r.EvalRecord) -> None:
    res = e.res
    row = RunRow(run_id=res.run_id, kind=res.kind, model=res.model, weights_hash=res.weights_hash, task=res.task,
                 task_version=res.task_version, split=res.split, config=res.config, data_files=res.data_files,
                 seed=res.seed, variant=res.ref, strategy=res.strategy)
    upsert_run(con, row, "completed", seconds=res.seconds)
    _metrics(con, res.run_id, res.metrics)
    con.execute("DELETE FROM samples WHERE run_id = ?", [res.run_id])
    _many(
        con, f"INSERT INTO samples ({_SAMPLE_COLUMNS}) VALUES ({', '.join('?' * len(_SAMPLE_COLUMNS.split(',')))})",
        [[res.run_id, s.idx, s.sample_id, *map(storable, (s.prompt, s.output, s.parsed, s.target)), s.correct,
          storable(s.detail),
          list(s.expert_ids if s.expert_ids is not None else res.ref.expert_ids),
          list(s.alphas if s.alphas is not None else res.ref.alphas), s.decision]
         for s in res.samples])
    for f, h in res.data_files.items():
        con.execute("INSERT OR IGNORE INTO datasets (task, split, file, sha256, n_records) VALUES (?,?,?,?,?)",
                    [res.task, res.split, f, h, e.n_records])


@_writes(r.RunMetrics)
def _run_metrics(con, m: r.RunMetrics) -> None:
    for k, v in m.values.items():
        con.execute("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?)", [m.run_id, k, float(v)])


@_writes(r.CopiedEval)
def _copied(con, c: r.CopiedEval) -> None:
    row = replace(c.row, config={**c.row.config, "same_as": c.source})
    v = row.variant
    upsert_run(con, row, "completed", seconds=0.0)
    con.execute("DELETE FROM metrics WHERE run_id = ?", [row.run_id])
    con.execute("INSERT INTO metrics SELECT ?, name, value FROM metrics WHERE run_id = ?", [row.run_id, c.source])
    con.execute("DELETE FROM samples WHERE run_id = ?", [row.run_id])
    con.execute(
        f"INSERT INTO samples ({_SAMPLE_COLUMNS}) SELECT ?, idx, sample_id, prompt, output, parsed, target, correct,"
        " detail, ?, ?, decision FROM samples WHERE run_id = ?",
        [row.run_id, list(v.expert_ids), list(v.alphas), c.source])


@_writes(r.TrainingRecord)
def _training(con, t: r.TrainingRecord) -> None:
    row = t.row
    upsert_run(con, row, "completed", seconds=t.seconds)
    _metrics(con, row.run_id, t.metrics)
    con.execute("DELETE FROM curves WHERE run_id = ?", [row.run_id])
    _many(
        con, "INSERT INTO curves VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [[row.run_id, c["step"], c["mean_reward"], c["train_acc"], c["kl"], c["loss"], c["grad_norm"],
          c["valid_acc"], c["wall_s"], c["tokens"]] for c in t.curve])
    _expert(con, row, t.expert_id, row.variant.method, t.targets, t.path, {k: float(v) for k, v in t.metrics.items()},
            t.origin)


@_writes(r.ImportRecord)
def _import(con, i: r.ImportRecord) -> None:
    """The import run; the experts row only where the catalog has none for this expert: a row written by
    the run that trained it here keeps that run as the expert's origin."""
    upsert_run(con, i.row, "completed")
    _metrics(con, i.row.run_id, i.metrics)
    if not con.execute("SELECT count(*) FROM experts WHERE expert_id = ?", [i.expert_id]).fetchall()[0][0]:
        _expert(con, i.row, i.expert_id, "svf", i.targets, i.path, i.metrics, i.origin)


@_writes(r.SearchRecord)
def _search(con, s: r.SearchRecord) -> None:
    res = s.res
    mix = res.expert.header.config["mixture"]
    row = replace(s.row, config={**s.row.config, "alpha": mix["alpha"], "stopped": mix["stopped"],
                                 "expert": res.expert.id})
    m = {k: float(v) for k, v in res.expert.header.metrics.items()}
    upsert_run(con, row, "completed", seconds=res.seconds)
    _metrics(con, row.run_id, m)
    con.execute("DELETE FROM curves WHERE run_id = ?", [row.run_id])
    _many(  # one curve point per generation: valid_acc = the best fitness's accuracy so far
        con, "INSERT INTO curves (run_id, step, mean_reward, train_acc, valid_acc) VALUES (?, ?, ?, ?, ?)",
        [[row.run_id, h["generation"], h["mean_accuracy"], h["elite_accuracy"], h["best"][0]]
         for h in mix["history"]])
    _expert(con, row, res.expert.id, "svf", res.expert.header.svf["targets"], str(res.expert.path), m,
            "few-shot-mixture")


@_writes(r.PickRecord)
def _pick(con, p: r.PickRecord) -> None:
    row = replace(p.row, config={**p.row.config, "picked": p.picked,
                                 "scores": {k: list(v) for k, v in p.scores.items()}},
                  variant=VariantRef.parse(p.picked))
    upsert_run(con, row, "completed")
    _metrics(con, row.run_id, {"picked_accuracy": p.scores[p.picked][0]})


@_writes(r.TransferRecord)
def _transfer(con, t: r.TransferRecord) -> None:
    ref = t.ref
    v = VariantRef("svf", (ref.id,))
    row = replace(t.row, config={**t.row.config, "expert": ref.id,
                                 "mapping": ref.header.config["transfer"]["mapping"]}, variant=v)
    upsert_run(con, row, "completed")
    _metrics(con, row.run_id, ref.header.metrics)
    _expert(con, row, ref.id, "svf", ref.header.svf.get("targets", "mlp"), str(ref.path), ref.header.metrics,
            "transfer")
