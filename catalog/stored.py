"""A completed evaluation read back whole (run row and per-sample outputs), for `t2 rejudge`."""

from __future__ import annotations

import json

from catalog.db import Catalog
from t2core.errors import ConfigError
from t2core.variants import VariantRef
from t2ops.rejudge import StoredEval, StoredSample

JUDGED_KINDS = ("eval", "rejudge")


def find_run(cat: Catalog, prefix: str, kinds: tuple[str, ...] = JUDGED_KINDS) -> tuple[str, str]:
    """(run id, what it evaluated) of the one completed run of `kinds` whose id starts with `prefix`."""
    marks = ", ".join("?" * len(kinds))
    _, rows = cat.query("SELECT run_id, task || ' ' || coalesce(variant, 'base') || coalesce(' ' || strategy, '') "
                        "|| CASE WHEN kind = 'rejudge' THEN ' (re-judged)' ELSE '' END "
                        f"FROM runs WHERE kind IN ({marks}) AND status = 'completed' AND starts_with(run_id, ?)",
                        [*kinds, prefix])
    if len(rows) != 1:
        raise ConfigError(f"run {prefix!r}: {'no' if not rows else len(rows)} completed evaluations have an id that "
                          "starts so; give one from `t2 catalog ls runs`" + (" (a longer prefix)." if rows else "."))
    return rows[0][0], rows[0][1]


def stored_eval(cat: Catalog, prefix: str) -> StoredEval:
    run_id, _ = find_run(cat, prefix)
    _, runs = cat.query("SELECT model, weights_hash, task, task_version, split, config_json, data_hashes, seed, "
                        "coalesce(variant, 'base'), coalesce(method, 'base'), expert_ids, alphas, strategy "
                        "FROM runs WHERE run_id = ?", [run_id])
    (model, wh, task, tv, split, cfg, data, seed, variant, method, ids, alphas, strategy) = runs[0]
    config = json.loads(cfg or "{}")
    ref = VariantRef(method, tuple(ids or ()), tuple(alphas or ()), dispatch=config.get("dispatch", ""))
    if ref.name != variant:  # records written before the structured columns: the name alone
        ref = VariantRef.parse(variant)
    _, rows = cat.query("SELECT idx, sample_id, prompt, output, correct, expert_ids, alphas, decision FROM samples "
                        "WHERE run_id = ? ORDER BY idx", [run_id])
    samples = tuple(StoredSample(i, sid, p or "", o or "", bool(c), tuple(e or ()), tuple(a or ()), d)
                    for i, sid, p, o, c, e, a, d in rows)
    return StoredEval(run_id, model, wh, task, tv, split, config, json.loads(data or "{}"), int(seed or 0), ref,
                      strategy, samples)
