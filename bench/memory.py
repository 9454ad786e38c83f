"""Each stage's measured peak memory beside `t2 plan`'s estimate of it, and their ratio (issues 35, 43).

The measured peaks are what the runs recorded (`peak_host_mb`, each stage's process from its start:
t2core/memory.py) in the catalog of `T2_HOME`, so run the profile first (`make run` for smol). The stages
are matched by replaying the flow's stage bodies against that catalog with nothing selected to run: every
stage is read back (or skipped), which gives each listed stage its run id, in the order `t2 plan` lists
them. Stages without a recorded peak (run before peaks were recorded, or not run) say so.

    python bench/memory.py --profile smol [--probes]

`--probes` first measures single pieces of work (a generation, differentiable forwards with and without
SVF, KL and checkpointing) in fresh processes beside the footprint's count (bench/memory_probes.py).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def recorded_stages(prof, seed: int | None, data_dir: str | None) -> list[tuple[str, str]]:
    """(label, run id) of every stage of the profile's full-paper flow, first listings only, read back from the
    catalog without running anything (a stage the catalog lacks is skipped, its run id still planned)."""
    from flows import paper
    from flows.stages import Stages, load_model_step

    seed = prof.seed_or_default(seed)
    ident = load_model_step.fn(prof.model, seed, prof.resolved_factor_dtype())
    S = Stages(only=("svd:__none__",))  # a pattern no stage has: nothing runs
    paper.full_paper(S, prof, ident, seed, data_dir, logging.getLogger("bench.memory"))
    return [(label, stage.plan.run_id) for label, stage, first in S.listed if first]


def peaks(run_ids: list[str], names: tuple[str, ...] = ("peak_host_mb", "peak_host_mb_since_start")
          ) -> dict[str, float]:
    """{run id: the metric} of these runs, for the first of `names` each recorded (MB)."""
    from catalog import Catalog

    cat = Catalog()
    _, rows = cat.query("SELECT run_id, value FROM metrics WHERE name IN (SELECT unnest(?)) "
                        "AND run_id IN (SELECT unnest(?))", [list(names), run_ids])
    return {r: v for r, v in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smol")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--probes", action="store_true", help="also measure single pieces of work (a few minutes)")
    a = ap.parse_args()
    if a.probes:
        subprocess.run([sys.executable, str(ROOT / "bench" / "memory_probes.py")], check=True)
        print()
    from flows.plan import plan_flow
    from t2core.plan.devices import devices_for
    from t2core.profiles import get_profile

    prof = get_profile(a.profile)
    plan = plan_flow(prof, devices_for(0), data_dir=a.data_dir)
    ran = recorded_stages(prof, a.seed, a.data_dir)
    measured = peaks([r for _, r in ran])
    floors = peaks([r for _, r in ran], ("peak_floor_host_mb",))  # what each stage found held when it began
    if [s.label for s in plan.stages] != [label for label, _ in ran]:
        print("note: the plan and the flow list different stages (a pick, a deduplicated run):",
              sorted(set(s.label for s in plan.stages) ^ set(label for label, _ in ran)))
    by_label = {}
    for label, rid in ran:
        by_label.setdefault(label, []).append(rid)
    print(f"{'stage':44s} {'measured GB':>12s} {'plan GB':>8s} {'plan/measured':>14s} {'floor GB':>9s}")
    ratios = []
    for s in plan.stages:
        rid = by_label.get(s.label, [None]).pop(0) if by_label.get(s.label) else None
        got = measured.get(rid) if rid else None
        est = s.host_bytes / 1e9
        if got is None:
            print(f"{s.label:44s} {'-':>12s} {est:8.2f} {'(no recorded peak)':>14s}")
            continue
        got_gb = got * 2**20 / 1e9
        ratios.append((est / got_gb, s.label))
        floor = f"{floors[rid] * 2**20 / 1e9:9.2f}" if rid in floors else f"{'-':>9s}"
        print(f"{s.label:44s} {got_gb:12.2f} {est:8.2f} {est / got_gb:14.2f} {floor}")
    if ratios:
        lo, hi = min(ratios), max(ratios)
        top = max((measured.get(r) or 0) * 2**20 / 1e9 for _, r in ran)
        print(f"\n{len(ratios)} stages with a recorded peak: plan/measured from {lo[0]:.2f} ({lo[1]}) to {hi[0]:.2f} "
              f"({hi[1]}); the largest measured peak {top:.2f} GB, the plan's {plan.host_peak / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
