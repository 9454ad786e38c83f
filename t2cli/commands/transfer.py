"""`t2 transfer`: move SVF experts from one model to another (paper §4.4)."""

from __future__ import annotations

import typer

from t2cli import common
from t2cli.common import app, console, handle_errors, quiet_transformers, rich_table


@app.command()
@handle_errors
def transfer(
    src: str = typer.Option(..., help="source model alias: its experts come from the catalog"),
    dst: str = typer.Option(..., help="destination model alias, HF id or local directory"),
    experts: str | None = typer.Option(None, help="comma-separated source expert ids (default: each task's expert "
                                                  "the source model trained)"),
    tasks: str | None = typer.Option(None, help="comma-separated training tasks whose experts move (default: all)"),
    control: str = typer.Option("ordered", help="comma-separated: ordered (the transfer), shuffled (the paper's "
                                                "control: each vector permuted), random (magnitude-matched)"),
    seed: int = typer.Option(0, help="seed of the shuffle / random controls"),
) -> None:
    """Move SVF experts from one model to another (paper §4.4), across shapes too: each becomes an
    ordinary expert of the destination (evaluate, dispatch, mix), its header naming its source."""
    quiet_transformers()
    from catalog import Catalog
    from catalog.execute import execute
    from catalog.experts import source_experts
    from t2core.errors import ConfigError
    from t2core.experts import ExpertRef
    from t2core.models import check_model_name
    from t2core.transfer import CONTROLS
    from t2ops import transfer as op
    from t2ops.model import ident_of

    check_model_name(dst)  # names first, before the catalog or a model is read
    controls = [c.strip() for c in control.split(",") if c.strip()]
    for c in controls:
        CONTROLS.get(c)
    cat = Catalog()
    if experts:
        ids = [e.strip() for e in experts.split(",") if e.strip()]
        for e in ids:
            ref = ExpertRef.resolve(e)
            if ref.header.model != src:
                raise ConfigError(f"expert {ref.id} is an expert of {ref.header.model}, not of --src {src}.")
    else:  # before loading the destination: "no experts for <src>" costs nothing
        ids = source_experts(cat, src, tuple(t.strip() for t in tasks.split(",")) if tasks else None)
    loaded = common.load(dst, 0)
    ident = ident_of(loaded, dst)
    reqs = [op.TransferRequest(e, c, seed) for e in ids for c in controls]
    plans = [op.OP.plan(r, ident) for r in reqs]  # every mapping is checked before anything is written
    rows = []
    for p in plans:
        out = execute(op.OP, None, loaded, cat, plan=p)
        rows.append((out.task, out.source, out.control, out.mapping, out.expert_id, "reused" if out.reused else "new"))
    seen: dict[str, str] = {}
    for i, r in enumerate(rows):  # a control that gives the same expert as another (z = 1 stays 1) says so
        note = f"same as {seen[r[4]]}" if r[4] in seen else ""
        seen.setdefault(r[4], r[2] if all(x[0] == r[0] for x in rows) else f"{r[0]}/{r[2]}")
        rows[i] = (*r, note)
    console.print(rich_table(f"{src} -> {dst}: {len(rows)} transferred experts ({len(seen)} distinct)",
                             ["task", "source expert", "control", "mapping", "destination expert", "", "note"], rows,
                             whole=("control", "note"), compact=True))
    console.print(f"evaluate with `t2 eval --model {dst} --task <task> --expert <destination expert>`; "
                  "`t2 report --table 9` compares them")
