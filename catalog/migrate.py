"""Data migrations the idempotent DDL in schema.sql cannot express, each run once per catalog.

v3 (issue 9): structured columns for what produced each result. Rows written before it carry
that only in their `variant` string (`base`, `svf:<expert>`, `lora:<adapter>`, `svf-train`, ...):
`method` and `expert_ids` are filled from it. SVF experts were listed as `<task>-<run id prefix>`;
where the expert file is still there its content id (`svf:<hex>`, t2core.experts.expert_id)
replaces that, in `experts` and in the `variant` of the training run that wrote it. Files that are
gone keep their old id, which `t2 eval --expert` still resolves while the store holds the file.
"""

from __future__ import annotations

from pathlib import Path

VERSION = 3


def migrate(con) -> None:
    """Apply pending data migrations inside the caller's connection (after schema.sql)."""
    done = {v for (v,) in con.execute("SELECT version FROM schema_version").fetchall()}
    if VERSION in done:
        return
    con.execute("BEGIN TRANSACTION")
    try:
        _v3(con)
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [VERSION])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _v3(con) -> None:
    for old, expert_path in con.execute(
            "SELECT expert_id, path FROM experts WHERE method = 'svf' AND expert_id NOT LIKE 'svf:%'").fetchall():
        new = _content_id(expert_path)
        if new:
            con.execute("UPDATE experts SET expert_id = ? WHERE expert_id = ?", [new, old])
            con.execute("UPDATE runs SET variant = ? WHERE variant = ?", [new, f"svf:{old}"])
    # adapters were listed by bare id (NTP) or as `lora-pg-<id>`: now `<method>:<id>`, as `t2 eval --expert` takes
    con.execute("UPDATE experts SET expert_id = method || ':' || regexp_replace(expert_id, '^lora-pg-', '') "
                "WHERE method <> 'svf' AND expert_id NOT LIKE '%:%'")
    con.execute("""
        UPDATE runs SET
            method = CASE
                WHEN variant IS NULL THEN (CASE WHEN kind = 'eval' THEN 'base' ELSE NULL END)
                WHEN variant LIKE '%-train' THEN regexp_replace(variant, '-train$', '')
                ELSE split_part(variant, ':', 1) END,
            expert_ids = CASE
                WHEN regexp_full_match(variant, 'svf:[0-9a-f]{24}') THEN [variant]
                WHEN variant LIKE '%:%' THEN [split_part(variant, ':', 2)]
                ELSE [] END,
            alphas = []
        WHERE method IS NULL""")
    con.execute("""
        UPDATE samples SET expert_ids = r.expert_ids, alphas = r.alphas
        FROM runs r WHERE samples.run_id = r.run_id AND samples.expert_ids IS NULL""")


def _content_id(path: str | None) -> str | None:
    from t2core.errors import T2Error
    from t2core.experts import expert_id
    from t2core.hashing import tensors_hash
    from t2core.svf import load_expert

    if not path or not Path(path).is_file():
        return None
    try:
        policy, header = load_expert(path)
    except T2Error:
        return None
    return expert_id(header, header.vectors_sha256 or tensors_hash(policy.raw_state()))
