"""`t2 catalog ls`, `t2 compare` and `t2 report`: what the catalog holds, two runs item by item, and the paper's
tables and figures from it."""

from __future__ import annotations

import typer

from t2cli import views
from t2cli.common import app, catalog_app, console, handle_errors, rich_table

_TABLES = {
    "runs": "SELECT run_id, kind, method, variant, model, task, split, status, round(seconds, 2) AS seconds, git_sha, "
            "seed, finished_at FROM runs ORDER BY started_at DESC LIMIT ?",
    "models": "SELECT alias, weights_hash, source, n_params, first_seen FROM models ORDER BY first_seen LIMIT ?",
    "decompositions": "SELECT decomp_key, targets, n_matrices, bytes, round(seconds, 2) AS seconds, max_error, path "
                      "FROM decompositions ORDER BY created_at LIMIT ?",
    "datasets": "SELECT task, split, file, sha256, n_records FROM datasets ORDER BY task, split LIMIT ?",
    "metrics": "SELECT r.model, r.task, r.split, m.name, m.value, m.run_id FROM metrics m JOIN runs r USING (run_id) "
               "ORDER BY r.model, r.task, m.name LIMIT ?",
    "samples": "SELECT run_id, idx, sample_id, parsed, target, correct, left(output, 60) AS output FROM samples "
               "ORDER BY run_id, idx LIMIT ?",
    "experts": "SELECT expert_id, task, method, origin, targets, metrics_json, run_id, path FROM experts ORDER BY created_at "
               "LIMIT ?",
    "curves": "SELECT r.task, c.step, c.mean_reward, c.train_acc, c.kl, c.valid_acc, round(c.wall_s, 1) AS wall_s "
              "FROM curves c JOIN runs r USING (run_id) ORDER BY r.task, c.step LIMIT ?",
}


@catalog_app.command("ls")
@handle_errors
def catalog_ls(
    table: str | None = typer.Argument(None, help=f"one of: {', '.join(_TABLES)} (default: a summary)"),
    limit: int = typer.Option(50, help="max rows"),
) -> None:
    """Show what the catalog holds (rich tables)."""
    from catalog import Catalog
    from t2core.errors import ConfigError, UnknownNameError

    if limit < 1:
        raise ConfigError(f"--limit {limit}: give a number of rows >= 1.")
    cat = Catalog()
    if table is None:
        counts = [(t, cat.query(f"SELECT count(*) FROM {t}")[1][0][0]) for t in _TABLES]
        console.print(rich_table(f"catalog {cat.path}", ["table", "rows"], counts))
        _, rows = cat.query(
            "SELECT r.model, r.kind, r.method, r.strategy, r.expert_ids, r.variant, r.task, r.split, m.value, "
            "(SELECT value FROM metrics n WHERE n.run_id=r.run_id AND n.name='n'), r.status, r.error, r.run_id "
            "FROM runs r LEFT JOIN metrics m ON m.run_id=r.run_id AND m.name='accuracy' WHERE r.kind='eval' "
            "ORDER BY r.model, r.task LIMIT ?", [limit])
        short = views.short_ids([r[-1] for r in rows] + [e for r in rows for e in (r[4] or [])])
        shown = [(r[0], views.produced_by(*r[1:6], short), r[6], r[7], r[8], r[9], views.status_text(r[10], r[11]),
                  short[r[12]]) for r in rows]
        title, cols, shown = views.one_model(["model", "produced by", "task", "split", "accuracy", "n", "status",
                                              "run"], shown, "evaluations{of}")
        console.print(rich_table(title, cols, shown, whole=("run",), compact=True))
        return
    if table not in _TABLES:
        raise UnknownNameError("catalog table", table, list(_TABLES))
    if table == "runs":
        _, rows = cat.query(
            "SELECT run_id, kind, method, strategy, expert_ids, variant, model, task, split, "
            "json_extract_string(config_json, '$.sampler'), status, error, round(seconds, 1), "
            "strftime(finished_at, '%m-%d %H:%M') FROM runs ORDER BY started_at DESC LIMIT ?", [limit])
        short = views.short_ids([r[0] for r in rows] + [e for r in rows for e in (r[4] or [])])
        shown = [(short[r[0]], r[1], views.produced_by(*r[1:6], short), r[6],
                  f"{r[7]}/{r[8]}" if r[7] and r[8] else r[7] or "", r[9] or "", views.status_text(r[10], r[11]),
                  r[12], r[13]) for r in rows]
        cols = ["run", "kind", "produced by", "model", "task/split", "sampler", "status", "s", "finished"]
        title, cols, shown = views.one_model(cols, shown, "runs{of}, newest first (`t2 compare` and `--expert` take "
                                             "these id prefixes)")
        console.print(rich_table(title, cols, shown, whole=("run", "kind", "produced by", "model", "task/split",
                                                            "status"), compact=True))
        return
    if table == "experts":  # what each row points to, checked now: a corrupted or missing file is said
        from t2core.experts import file_status

        _, rows = cat.query("SELECT expert_id, task, method, origin, targets, metrics_json, run_id, path FROM experts "
                            "ORDER BY created_at LIMIT ?", [limit])
        short = views.short_ids([r[0] for r in rows] + [r[6] for r in rows if r[6]])
        shown = [(short[r[0]], r[1], r[3] or r[2], r[4], views.expert_summary(r[3], r[5]), short.get(r[6], ""),
                  file_status(r[2], r[7])) for r in rows]
        console.print(rich_table("experts (`t2 inspect expert <id>` looks inside one)",
                                 ["expert", "task", "made by", "targets", "how it came out", "run", "file"], shown,
                                 whole=("expert", "task", "made by", "file"), compact=True))
        return
    cols, rows = cat.query(_TABLES[table], [limit])
    console.print(rich_table(table, cols, rows))


@app.command()
@handle_errors
def compare(
    a: str = typer.Argument(..., help="an evaluation's run id (or a unique prefix)"),
    b: str = typer.Argument(..., help="the evaluation to pair it with, e.g. the base model's on the same slice"),
) -> None:
    """Two evaluations item by item: accuracies on the items both answered, the discordant pairs and the
    exact McNemar p (what docs/results.md reports for every row against base)."""
    from catalog import Catalog
    from catalog.reports.common import paired_counts
    from catalog.reports.stats import mcnemar_p
    from catalog.stored import find_run
    from t2core.errors import ConfigError

    cat = Catalog()
    (ra, what_a), (rb, what_b) = find_run(cat, a), find_run(cat, b)
    if ra == rb:
        raise ConfigError(f"{a!r} and {b!r} are the same run ({ra[:12]}); compare two evaluations of the same items, "
                          "e.g. an expert's against base's.")
    n, both, only_a, only_b, _ = paired_counts(cat, ra, rb)
    if not n:
        raise ConfigError(f"runs {ra[:12]} and {rb[:12]} share no item; compare evaluations of the same task.")
    slices = {r: (m, f"{t}/{sp}") for r, m, t, sp in cat.query(
        "SELECT run_id, model, task, split FROM runs WHERE run_id IN (?, ?)", [ra, rb])[1]}
    for j, what in ((0, "models"), (1, "slices")):  # paired by question id all the same: said, not silent
        if slices[ra][j] != slices[rb][j]:
            console.print(f"note: the two runs are of different {what} ({slices[ra][j]} and {slices[rb][j]}); "
                          "their items are paired by question id", highlight=False)
    console.print(f"A {ra[:12]} ({what_a}): {(both + only_a) / n:.3f}   B {rb[:12]} ({what_b}): {(both + only_b) / n:.3f}"
                  f"   on {n} shared items; only A right {only_a}, only B right {only_b}; exact McNemar "
                  f"p = {mcnemar_p(only_a, only_b):.3g}", highlight=False)


@app.command()
@handle_errors
def report(
    table: str | None = typer.Option(None, help="paper table number, or a report's name ({tables})"),
    figure: str | None = typer.Option(None, help="paper figure number, or a report's name ({figures})"),
    model: str | None = typer.Option(None, help="only this model"),
    profile: str = typer.Option("smol", help="whose settings say which few-shot search is Table 2's and Figure "
                                             "7's (its adapt.shots; the most shots where none has that many)"),
    fmt: str = typer.Option("rich", "--format", help="rich, md or csv (tables)"),
    out: str | None = typer.Option(None, help="output file (figures; default figure<N>.png)"),
) -> None:
    """Render a paper table or figure from the catalog."""
    from catalog import Catalog
    from catalog.reports import find_report, report_keys
    from t2core.errors import ConfigError
    from t2core.profiles import get_profile

    if fmt not in ("rich", "md", "csv"):
        raise ConfigError(f"--format {fmt!r} is not one of rich, md, csv.")
    if table is not None and figure is not None:
        raise ConfigError(f"--table {table} and --figure {figure} given; render one at a time.")
    rep = find_report("table", table) or find_report("figure", figure)
    if rep is None:
        raise ConfigError(f"nothing to report for --table {table} / --figure {figure}; available: --table "
                          f"{', '.join(report_keys('table'))}, --figure {', '.join(report_keys('figure'))}.")
    # the full few-shot search: the profile's number of shots
    opts = {"shots": get_profile(profile).adapt.shots} if rep.takes_shots else {}
    cat = Catalog()
    if rep.kind == "figure":
        console.print(f"wrote {rep.render(cat, out or f'figure{rep.key}.png', model, **opts)}")
        return
    t = rep.render(cat, model, **opts)
    if fmt == "csv":  # every row and column, for a program to read
        print(t.to_csv(), end="")
        return
    t = t.trimmed()  # on screen: no all-empty rows or columns
    if fmt == "md":
        print(t.to_markdown(), end="")
    else:
        console.print(rich_table(t.title, t.columns, [tuple(r) for r in t.rows]))
        for note in t.notes:
            console.print(note, style="dim", highlight=False)
