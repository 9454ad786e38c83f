"""`t2 experts export` and `t2 experts import`: SVF experts as packages that move between T2_HOMEs, and
as PEFT LoRA adapters a multi-adapter server loads (issue 37; docs/experts.md)."""

from __future__ import annotations

import json

import typer

from t2cli import common
from t2cli.common import console, experts_app, handle_errors

FORMATS = ("svf", "peft")


def _record(ref) -> dict:
    """What this T2_HOME knows of the expert beyond its header: the store's record of the run that wrote it
    and the catalog's rows (expert, run, model), where they exist."""
    from catalog import Catalog
    from t2core.artifacts import ArtifactStore
    from t2core.experts import KIND, SAME_AS

    out: dict = {}
    store = ArtifactStore()
    if ref.path.resolve().parent.parent == (store.root / KIND).resolve():
        meta = store.manifest(KIND, ref.path.parent.name).meta
        out["store"] = {k: v for k, v in meta.items() if k != SAME_AS}
    cat = Catalog()
    _, rows = cat.query("SELECT run_id, method, origin, targets, metrics_json FROM experts WHERE expert_id = ?",
                        [ref.id])
    if rows:
        run_id, method, origin, targets, metrics = rows[0]
        cat_rec: dict = {"expert": {"run_id": run_id, "method": method, "origin": origin, "targets": targets,
                                    "metrics": json.loads(metrics or "{}")}}
        _, runs = cat.query("SELECT kind, model, config_json, git_sha, seconds FROM runs WHERE run_id = ?", [run_id])
        if runs:
            kind, model, config, sha, seconds = runs[0]
            cat_rec["run"] = {"kind": kind, "model": model, "config": json.loads(config or "{}"), "git_sha": sha,
                              "seconds": seconds}
        out["catalog"] = cat_rec
    _, models = cat.query("SELECT alias, source, n_params FROM models WHERE weights_hash = ?",
                          [ref.header.base_weights_hash])
    if models:
        out.setdefault("catalog", {})["model"] = dict(zip(("alias", "source", "n_params"), models[0], strict=True))
    return out


def _factors(ref, seed: int):
    """U, s, V of the expert's matrices: the store's decomposition, else made now from its base model."""
    from t2core.errors import ArtifactError
    from t2core.export import stored_factors
    from t2core.svd import ensure_svd, load_svd

    svd = stored_factors(ref)
    if svd is not None:
        return svd
    h = ref.header
    common.quiet_transformers()
    loaded = common.load(h.model, seed)
    if loaded.weights_hash != h.base_weights_hash:
        raise ArtifactError(f"{ref.id} is an expert of weights {h.base_weights_hash[:12]}…, but {h.model!r} loads "
                            f"weights {loaded.weights_hash[:12]}… here, and the store has no decomposition of the "
                            "expert's weights; export it where its base model is.")
    with common.err_console.status(f"decomposing {h.model}'s {h.svf.get('targets', 'mlp')} matrices (once)"):
        return load_svd(ensure_svd(loaded, h.svf.get("targets", "mlp")))


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
    from t2core.errors import ConfigError
    from t2core.experts import ExpertRef
    from t2core.export import write_package
    from t2core.export.lowrank import check_tol
    from t2core.export.package import check_destination
    from t2core.export.peft_lora import check_rank, to_peft

    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}.")
    if fmt == "svf" and rank != "auto":
        raise ConfigError(f"--rank {rank} applies to --format peft (a LoRA adapter); an svf package holds the "
                          "expert itself, at full rank.")
    check_rank(rank)
    check_tol(tol)
    check_destination(dest)
    ref = ExpertRef.resolve(expert)
    record = _record(ref)
    h = ref.header
    what = f"{ref.id} ({h.task} expert of {h.model})"
    if fmt == "svf":
        path = write_package(ref, dest, record)
        size = sum(f.stat().st_size for f in path.iterdir())
        console.print(f"wrote {path}: {what}, {size / 1024:.0f} KiB; import it with `t2 experts import {path}`",
                      highlight=False)
        return
    out = to_peft(ref, dest, rank, tol, svd=_factors(ref, seed), record=record)
    size = sum(f.stat().st_size for f in out.path.iterdir())
    worst = max(out.truncation.errors.items(), key=lambda kv: kv[1], default=("", 0.0))
    how = f"auto at --tol {tol}" if out.asked == "auto" else (
        f"{out.asked} capped at the largest matrix rank" if out.asked != out.rank else "as asked")
    console.print(f"wrote {out.path}: {what} as a PEFT LoRA adapter of rank {out.rank} ({how}), relative error of "
                  f"ΔW {out.truncation.error:.4f} over all {len(out.truncation.errors)} matrices (worst matrix "
                  f"{worst[1]:.4f}: {worst[0]}), {size / 2**20:.1f} MiB", highlight=False)


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
