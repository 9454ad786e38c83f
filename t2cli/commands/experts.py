"""`t2 experts export` and `t2 experts import`: SVF experts as packages that move between T2_HOMEs, and
as PEFT LoRA adapters a multi-adapter server loads (issue 37; docs/experts.md)."""

from __future__ import annotations

import typer

from t2cli import common
from t2cli.common import console, experts_app, handle_errors


@experts_app.command("export")
@handle_errors
def export_cmd(
    expert: str = typer.Argument(..., help="expert id (svf:<hex> from `t2 catalog ls experts`) or an expert file"),
    dest: str = typer.Argument(..., help="directory to write: new, or empty"),
    fmt: str = typer.Option("svf", "--format", help="svf: the expert itself, a package `t2 experts import` reads; "
                                                   "peft: a LoRA adapter (PEFT's files) for PEFT or vLLM"),
    rank: str = typer.Option("auto", help="--format peft: the LoRA rank, a number, or auto: the smallest rank whose "
                                          "relative error of ΔW (all matrices together) is at most --tol"),
    tol: float = typer.Option(0.05, help="--format peft --rank auto: the largest relative Frobenius error of ΔW"),
    seed: int = typer.Option(0, help="random seed (a model is loaded only to decompose it when the store has no "
                                     "decomposition of the expert's base weights)"),
) -> None:
    """Write an SVF expert (paper §3.2) as a package with a sha256 manifest, or as a PEFT LoRA adapter: the best
    rank-r approximation of its change ΔW = U diag(s ⊙ (z − 1)) Vᵀ."""
    from catalog.experts import expert_record
    from t2core.experts import ExpertRef
    from t2core.export import check_export, export_expert
    from t2core.export.package import check_destination

    check_export(fmt, rank, tol)
    check_destination(dest)
    ref = ExpertRef.resolve(expert)

    def load(model: str):
        common.quiet_transformers()
        return common.load(model, seed)

    out = export_expert(ref, dest, fmt, rank, tol, expert_record(ref), load, common.err_console.status)
    h = ref.header
    what = f"{ref.id} ({h.task} expert of {h.model})"
    if out.lora is None:
        console.print(f"wrote {out.path}: {what}, {out.bytes / 1024:.0f} KiB; import it with `t2 experts import "
                      f"{out.path}`", highlight=False)
        return
    lora = out.lora
    worst = max(lora.truncation.errors.items(), key=lambda kv: kv[1], default=("", 0.0))
    how = f"auto at --tol {tol}" if lora.asked == "auto" else (
        f"{lora.asked} capped at the largest matrix rank" if lora.asked != lora.rank else "as asked")
    console.print(f"wrote {out.path}: {what} as a PEFT LoRA adapter of rank {lora.rank} ({how}), relative error of "
                  f"ΔW {lora.truncation.error:.4f} over all {len(lora.truncation.errors)} matrices (worst matrix "
                  f"{worst[1]:.4f}: {worst[0]}), {out.bytes / 2**20:.1f} MiB", highlight=False)


@experts_app.command("import")
@handle_errors
def import_cmd(
    package: str = typer.Argument(..., help="a package directory written by `t2 experts export`"),
    model: str | None = typer.Option(None, help="refuse the package unless its expert is one of this model (alias, "
                                                "HF id or directory; loaded only if this catalog does not know it)"),
    seed: int = typer.Option(0, help="random seed (for --model, when it is loaded)"),
) -> None:
    """Verify a package (every file's sha256, the expert against its content id), refuse one for another model,
    and add its expert to this T2_HOME: the store (under its content id) and the catalog's experts."""
    from catalog import Catalog
    from catalog.execute import execute_plan
    from t2core.export import check_model
    from t2ops import expert_import as op

    plan = op.OP.plan(op.ImportRequest(package))  # the package verified: nothing written yet
    pkg = plan.pkg
    cat = Catalog()
    alias = model or pkg.alias
    _, rows = cat.query("SELECT weights_hash FROM models WHERE alias = ?", [alias])
    known = {r[0] for r in rows}
    if model and not known:
        known = {common.load(model, seed).weights_hash}
    if known and pkg.weights_hash not in known:
        check_model(pkg, sorted(known)[0], f"{alias} {'as loaded here' if model and not rows else 'as this catalog knows it'}")
    out = execute_plan(op.OP, plan, None, cat)
    said = "was imported before" if out.reused else "imported"
    console.print(f"{out.expert_id} ({out.task} expert of {out.model}) {said}: {out.path}, run {out.run_id}; evaluate "
                  f"it with `t2 eval --model {out.model} --task {out.task} --expert {out.expert_id}`", highlight=False)
