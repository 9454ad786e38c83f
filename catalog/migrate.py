"""Data migrations the idempotent DDL in schema.sql cannot express, each run once per catalog.

v3 (issue 9): structured columns for what produced each result. Rows written before it carry
that only in their `variant` string (`base`, `svf:<expert>`, `lora:<adapter>`, `svf-train`, ...):
`method` and `expert_ids` are filled from it. SVF experts were listed as `<task>-<run id prefix>`;
where the expert file is still there its content id (`svf:<hex>`, t2core.experts.expert_id)
replaces that, in `experts` and in the `variant` of the training run that wrote it. Files that are
gone keep their old id, which `t2 eval --expert` still resolves while the store holds the file.

v4 (issue 21): `experts.origin`, how each expert was made, filled for rows written before it.
"""

from __future__ import annotations

from pathlib import Path

from catalog.storage import CatalogStorageError


def migrate(con, path: Path | str = "the catalog") -> None:
    """Apply pending data migrations inside the caller's connection (after schema.sql), each in its
    own transaction and recorded in `schema_version`. A catalog a newer t2 migrated further is refused:
    this code would write rows that version does not expect."""
    done = {v for (v,) in con.execute("SELECT version FROM schema_version").fetchall()}
    newest = max(v for v, _ in MIGRATIONS)
    if done and max(done) > newest:
        raise CatalogStorageError(f"catalog {path} has schema version {max(done)}, newer than this t2's {newest}; "
                                  "upgrade t2 (git pull; pip install -e .), or set T2_CATALOG to another file.")
    for version, step in MIGRATIONS:
        if version in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            step(con)
            con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
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


def _v4(con) -> None:
    """`experts.origin`: adapters from their method; SVF experts from their header where the file is
    still there (files written before headers kept it: `t2core.svf.expert_origin`), else left empty."""
    from t2core.errors import T2Error
    from t2core.methods import adapter_products, method_of_product
    from t2core.svf import expert_origin, read_header

    for product in adapter_products():
        con.execute("UPDATE experts SET origin = ? WHERE origin IS NULL AND method = ?",
                    [method_of_product(product).name, product])
    for eid, path in con.execute("SELECT expert_id, path FROM experts WHERE origin IS NULL AND method = 'svf'"
                                 ).fetchall():
        try:
            origin = expert_origin(read_header(path)) if path and Path(path).is_file() else None
        except T2Error:
            origin = None
        if origin:
            con.execute("UPDATE experts SET origin = ? WHERE expert_id = ?", [origin, eid])


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


MIGRATIONS = ((3, _v3), (4, _v4))
