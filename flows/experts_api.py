"""The experts-api flow's body: a profile's experts trained (or read back), exported into a folder, then served
by `t2 api`'s server until the run is stopped (issue 37: one run from training to an endpoint).

Why nothing here is new machinery: the experts are the full-paper flow's stages (`paper.expert_stages`,
`paper.dispatch_stage`), so an expert either flow trained is read back from the catalog, not retrained; each
export is `t2 experts export`'s (`t2core.export.export_expert` with `catalog.experts.expert_record`); the
server is `t2 api`'s (`t2api.launch.serve`). Every parameter is checked before the model loads.

The folder (`out`):

    out/svf/<task>/    each expert as a package (`t2 experts import out/svf/<task>` in another T2_HOME)
    out/peft/<task>/   with `peft_rank`: each expert as a PEFT LoRA adapter (vLLM's --lora-modules)

`dispatch` is the classification expert, exported when the strategy is cls-expert. A folder that already
holds the same export (the same expert, format and rank) is kept: a rerun exports nothing again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from catalog.experts import expert_record
from flows import paper
from flows.runtime import get_model
from flows.stages import Stages, load_model_step
from t2api.launch import ServeRequest, check, serve
from t2core.errors import ArtifactError, ConfigError
from t2core.experts import ExpertRef
from t2core.export import export_expert, read_package
from t2core.export.peft_lora import DEFAULT_TOL, check_rank
from t2core.profiles import Profile

KINDS = {"svf": "svf", "peft": "peft-lora"}  # the folder under `out` -> the package kind it holds


def check_out(out: str | None) -> Path:
    """`out` is a folder this process can create or write into."""
    if not out:
        raise ConfigError("--out: give the folder to export the experts into (e.g. --out ./experts).")
    p = Path(out).expanduser().resolve()
    if p.exists() and not p.is_dir():
        raise ConfigError(f"--out {out}: {p} is a file; give a folder (new, or one this flow exported into).")
    parent = p
    while not parent.exists():
        parent = parent.parent
    try:  # a file made and removed there: what permissions, a read-only mount or /proc say, as the export will meet it
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise ConfigError(f"--out {out}: {parent} cannot be written ({e.strerror or e}); give a folder you can "
                          "write.") from None
    return p


def check_params(profile: str, out: str | None, host: str, port: int, strategy: str, sampler: str,
                 peft_rank: str | int | None, serve_: bool, backend: str = "t2") -> tuple[Profile, Path]:
    """Every parameter, in one line each when wrong, before anything runs; the address is bound only when the run
    will serve."""
    prof = check(ServeRequest(profile, strategy, sampler, host, port, backend=backend), bind=serve_)
    if peft_rank is not None:
        check_rank(peft_rank, "--peft-rank")
    return prof, check_out(out)


def export_one(ref: ExpertRef, dest: Path, fmt: str, rank: str | int = "auto") -> tuple[Path, bool]:
    """`ref` exported as `fmt` into `dest`; (dest, True) when `dest` already held that export (kept as it is)."""
    if dest.exists() and any(dest.iterdir()):
        try:
            pkg = read_package(dest, kind=None)
        except ArtifactError as e:
            raise ArtifactError(f"{dest} holds something other than an export of {ref.id} ({e}); give another --out "
                                "or delete that folder.") from None
        lora = pkg.manifest.get("lora", {})
        same = (pkg.expert_id == ref.id and pkg.manifest["kind"] == KINDS[fmt]
                and (fmt == "svf" or (str(lora.get("asked")) == str(rank) and lora.get("tol") in (None, DEFAULT_TOL))))
        if not same:
            raise ArtifactError(f"{dest} holds an export of {pkg.expert_id} ({pkg.manifest['kind']}), not of {ref.id} "
                                f"as {fmt}; give another --out or delete that folder.")
        return dest, True
    dest.parent.mkdir(parents=True, exist_ok=True)
    return export_expert(ref, dest, fmt, rank, DEFAULT_TOL, expert_record(ref)).path, False


def experts_api(prof: Profile, folder: Path, host: str, port: int, strategy: str, sampler: str,
                peft_rank: str | int | None, serve_: bool, data_dir: str | None, seed: int | None,
                backend: str = "t2") -> dict[str, Any]:
    """Train (or read back) `prof`'s experts (its training sampler resolved: `pipelines._profile`), export them
    into `folder`, then serve them until stopped (or return, `serve_` False); the parameters checked already
    (`check_params`)."""
    from t2core.adapt import strategy_class
    from t2core.tasks import get_task
    from t2ops import svd

    rank = check_rank(peft_rank, "--peft-rank") if peft_rank is not None else None
    seed = prof.seed_or_default(seed)
    for tr in prof.trains:
        get_task(tr.task).preflight()  # e.g. no code sandbox: fail in seconds, not after training
    ident = load_model_step(prof.model, seed, prof.resolved_factor_dtype())
    S = Stages()
    S.outcome(S.submit("svd", svd.OP, ident, svd.SvdRequest(prof.targets)))
    stages = paper.expert_stages(S, prof, ident, seed, data_dir)
    if "cls-expert" in strategy_class(strategy).needs:
        stages.append(("dispatch", paper.dispatch_stage(S, prof, ident, seed, data_dir)))
    ids = {task: paper.expert_id(S, stage) for task, stage in stages}
    exported: dict[str, dict[str, Any]] = {}
    for task, eid in ids.items():
        ref = ExpertRef.resolve(eid)
        exported[task] = {"expert_id": eid}
        for fmt in ("svf", "peft") if rank is not None else ("svf",):
            path, kept = export_one(ref, folder / fmt / task, fmt, rank if fmt == "peft" else "auto")
            exported[task][fmt] = str(path)
            print(f"{task}: {eid} {'already exported' if kept else 'exported'} as {fmt} to {path}")
    steps = [{"step": label, "state": st.state, "run_id": st.plan.run_id} for label, st, _ in S.listed]
    if serve_:
        auto = tuple(ids[t] for t in prof.adapt.experts)
        also = tuple(eid for t, eid in ids.items() if t not in prof.adapt.experts and t != "dispatch")
        serve(ServeRequest(prof.name, strategy, sampler, host, port, auto, ids.get("dispatch"), also, seed=seed,
                           backend=backend), get_model)
    return {"profile": prof.name, "model": prof.model, "out": str(folder), "experts": exported, "steps": steps}
