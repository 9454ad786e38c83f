"""`t2 inspect expert`: what an SVF expert boosts or damps, per block and along the spectrum."""

from __future__ import annotations

import typer

from t2cli.common import console, handle_errors, inspect_app, rich_table


def _z_vectors(ref) -> dict:
    """{matrix: z (r,)}: the expert's multipliers (sigmoid experts: σ(p), before the nuclear-norm rescale)."""
    import torch

    policy = ref.load()
    with torch.no_grad():
        return {n: policy.z(n).detach().clone() for n in policy.names}


@inspect_app.command("expert")
@handle_errors
def inspect_expert(
    expert: str = typer.Argument(..., help="expert id (svf:<hex>) or expert file"),
    vs: str | None = typer.Option(None, help="a second expert of the same model: cosine of the changes per block"),
    out: str | None = typer.Option(None, help="PNG to write (default: expert-<id>.png)"),
    per_matrix: bool = typer.Option(False, help="one row per matrix instead of one per block"),
) -> None:
    """Which singular components an SVF expert boosts or damps, per block and along the spectrum
    (paper §3.2); with --vs, how alike two experts' changes are, block by block."""
    from catalog.reports.expert_figure import figure_expert
    from t2core.experts import ExpertRef
    from t2core.inspect_expert import layer_cosines, matrix_stats
    from t2core.svf import expert_origin

    ref = ExpertRef.resolve(expert)
    z = _z_vectors(ref)
    h = ref.header
    made = expert_origin(h)
    origin = {"svf-pg": "REINFORCE", "svf-ntp": "SVF-NTP", "few-shot-mixture": "mixture",
              "transfer": f"transfer from {h.config.get('transfer', {}).get('source_model', '?')}"}.get(made, made)
    stats = matrix_stats(z)
    if not per_matrix:  # one row per block: the means over its matrices
        import statistics as st

        blocks = sorted({m.layer for m in stats})
        stats = [(b, [m for m in stats if m.layer == b]) for b in blocks]
        rows = [(b, "all", sum(m.rank for m in ms), *(f"{st.fmean(getattr(m, k) for m in ms):{f}}" for k, f in
                 (("mean", ".4f"), ("mean_abs_dev", ".2e"), ("boosted", ".0%"), ("damped", ".0%"),
                  ("dev_norm", ".2e"), ("head_dev", ".2e"), ("tail_dev", ".2e")))) for b, ms in stats]
    else:
        rows = [(m.layer, m.role, m.rank, f"{m.mean:.4f}", f"{m.mean_abs_dev:.2e}", f"{m.boosted:.0%}",
                 f"{m.damped:.0%}", f"{m.dev_norm:.2e}", f"{m.head_dev:.2e}", f"{m.tail_dev:.2e}") for m in stats]
    console.print(rich_table(f"{ref.id}: {h.task} expert of {h.model} ({origin}; targets {h.svf.get('targets')}, "
                         f"{sum(h.ranks.values())} values)",
                         ["block", "role", "r", "mean z", "mean |z−1|", "boosted", "damped", "‖z−1‖", "top 10%",
                          "bottom 10%"], rows))
    console.print("top / bottom 10%: mean |z − 1| over the components with the largest / smallest singular values")
    other = None
    if vs:
        vref = ExpertRef.resolve(vs)
        other = _z_vectors(vref)
        cos = layer_cosines(z, other)
        console.print(rich_table(f"cosine of z − 1: {ref.id} vs {vref.id} ({vref.header.task})", ["block", "cosine"],
                             [(b, "unchanged" if c is None else f"{c:.3f}") for b, c in cos]))
    path = figure_expert(z, out or f"expert-{ref.id.removeprefix('svf:')[:12]}.png", f"{ref.id} ({h.task})",
                                 other, vs or "")
    console.print(f"wrote {path}")
