"""`t2 svd`: decompose a model's target matrices once (paper §3.1), cached by content."""

from __future__ import annotations

import typer

from t2cli import common
from t2cli.common import app, console, handle_errors, progress_bar, quiet_transformers


@app.command()
@handle_errors
def svd(
    model: str = typer.Option("smollm2-135m", help="model alias, HF id or local directory"),
    targets: str = typer.Option("mlp", help="mlp (paper default), attn or both"),
    rebuild: bool = typer.Option(False, help="recompute even if a stored decomposition exists"),
    seed: int = typer.Option(0, help="seed (only tiny-random uses it, for its weights)"),
) -> None:
    """Decompose the targeted matrices once (W = U diag(s) Vᵀ) and store them; reuse on later calls."""
    quiet_transformers()
    from catalog import Catalog
    from catalog.execute import execute
    from t2ops import svd as op
    from t2ops.operation import Hooks

    req = op.SvdRequest(targets, rebuild)
    loaded = common.load(model, seed)
    with progress_bar(transient=True) as prog:
        bar = prog.add_task(f"SVD of the {targets} matrices", total=None)
        out = execute(op.OP, req, loaded, Catalog(), force=rebuild,
                      hooks=Hooks(progress=lambda done, total: prog.update(bar, completed=done, total=total)))
    info, new = out.info, out.new
    what = "reused stored decomposition (no SVD computed)" if info.reused else f"computed SVD in {info.seconds:.2f}s"
    console.print(f"[bold]{model}[/] targets={targets}: {what}")
    console.print(f"key {info.key}  {info.n_matrices} matrices  {info.bytes / 1e6:.1f} MB  "
                  f"max reconstruction error {info.max_error:.2e}  catalog: {'recorded' if new else 'already recorded'}")
    console.print(f"path {info.path}")
