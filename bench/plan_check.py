"""Run a few stages of a profile's flow, shortened, and put each one's measured peak beside `t2 plan`'s (issue 35).

Why shortened: the `qwen` profile's full run takes a day and a half on 2 cores, but a stage's peak comes from
the shapes of its work (rows per forward, prompt and answer lengths, the vocabulary), not from how many steps or
items it does. So the profile is copied with fewer optimizer steps, smaller validation and evaluation slices
(and, where asked, smaller micro-batches). The chosen stages of its full-paper flow run in this process, one
after another, as `t2 run --stages` runs them (flows/stages.py: each stage's peak from its own start, recorded
in the catalog of `T2_HOME`; a stage run before is not run again, its recorded peak is read back). Each is
planned (`flows.plan.plan_flow`, the numbers `t2 plan` prints) after the stages this process computed before
it, as `only=` plans them: what they left resident, a server they started; a stage read back, as the first of
a process. A sampler process (vLLM) is measured from outside: the largest VmHWM among this process's
descendants while the stage ran (a server started earlier and still up counts with its own history).

    T2_HOME=... python bench/plan_check.py --profile qwen --stages 'train:mbpp' --steps 2 --micro-batch-size 2

Prints, per stage: measured host GB, plan GB, plan/measured, and the same for the sampler process.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def shortened(prof, steps: int, limit: int, valid_limit: int, micro_batch: int | None, choice_micro_batch: int | None):
    """The profile with fewer steps and items per slice; the shapes of each forward unchanged (or the micro-batch
    given). A slice already smaller keeps its size."""
    from t2core.tasks import get_task

    def lim(n):
        return limit if n is None else min(n, limit)

    def rl(task, over):
        d = dict(over)
        d["steps"] = min(int(d.get("steps", steps)), steps)
        d["valid_limit"] = min(int(d.get("valid_limit", valid_limit)), valid_limit)
        d["valid_every"] = steps  # one validation, at the end
        choice = get_task(task).output_type == "choice"
        mb = choice_micro_batch if choice else micro_batch
        if mb is not None:
            d["micro_batch_size"] = mb
        return tuple(d.items())

    trains = tuple(dataclasses.replace(t, overrides=rl(t.task, t.overrides), kl_grid=t.kl_grid[:1])
                   for t in prof.trains)
    baselines = tuple(dataclasses.replace(b, overrides=tuple({**dict(b.overrides), "steps": steps}.items()))
                      for b in prof.baselines)
    evals = tuple(dataclasses.replace(e, limit=lim(e.limit)) for e in prof.evals)
    adapt = dataclasses.replace(prof.adapt, unseen=tuple(dataclasses.replace(e, limit=lim(e.limit))
                                                          for e in prof.adapt.unseen))
    return dataclasses.replace(prof, trains=trains, baselines=baselines, evals=evals, adapt=adapt)


class DescendantPeak:
    """The largest VmHWM (GB) among this process's descendants, polled while a block runs."""

    def __init__(self, every: float = 0.5) -> None:
        self.every, self.peak, self._stop = every, 0.0, threading.Event()

    def _poll(self) -> None:
        import psutil

        from t2core.memory import status_mb

        me = psutil.Process()
        while not self._stop.is_set():
            for p in me.children(recursive=True):
                try:
                    if any("prefect" in part for part in p.cmdline()):  # the ephemeral Prefect API, not a sampler
                        continue
                except psutil.Error:
                    continue
                hwm = status_mb("VmHWM", p.pid)
                if hwm is not None:
                    self.peak = max(self.peak, hwm * 2**20 / 1e9)
            self._stop.wait(self.every)

    def __enter__(self):
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="qwen")
    ap.add_argument("--stages", required=True, help="comma-separated stage names of the full-paper flow")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--limit", type=int, default=32, help="items of each evaluation slice at most")
    ap.add_argument("--valid-limit", type=int, default=8)
    ap.add_argument("--micro-batch-size", type=int, default=None, help="of training on generated answers")
    ap.add_argument("--choice-micro-batch-size", type=int, default=None, help="of training on choice tasks")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--data-dir", default=None)
    a = ap.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

    from memory import peaks

    from flows import paper
    from flows.plan import plan_flow, stage_names
    from flows.stages import Skipped, Stages, _peak, load_model_step
    from t2core.paths import resolve_data_dir
    from t2core.plan.devices import devices_for
    from t2core.profiles import get_profile

    prof, note = get_profile(a.profile).with_sampler_available()
    if note:
        print(note)
    prof = shortened(prof, a.steps, a.limit, a.valid_limit, a.micro_batch_size, a.choice_micro_batch_size)
    data_dir = str(resolve_data_dir(a.data_dir) or "") or None
    devices = devices_for(gpus=0)

    def planned(only: list[str]):
        """The plan of `only`'s last stage, in a process that ran just `only`, in order (flows/plan.py)."""
        return next(s for s in plan_flow(prof, devices, "full-paper", a.seed, data_dir, only=tuple(only)).stages
                    if s.label == only[-1])

    names = stage_names(prof, "full-paper", a.seed, data_dir)
    wanted = [s.strip() for s in a.stages.split(",") if s.strip()]
    missing = [w for w in wanted if w not in names]
    if missing:
        raise SystemExit(f"--stages: {', '.join(missing)} not stages of {a.profile}'s full-paper flow "
                         f"(they are: {', '.join(names)})")

    seed = prof.seed_or_default(a.seed)
    ident = load_model_step.fn(prof.model, seed, prof.resolved_factor_dtype())
    rows, ran = [], []
    for label in wanted:
        S = Stages(only=(label,))
        t0 = time.perf_counter()
        with DescendantPeak() as sampler:
            paper.full_paper(S, prof, ident, seed, data_dir, logging.getLogger("bench.plan_check"))
            stage = next(st for lb, st, first in S.listed if lb == label and first)
            try:
                S.outcome(stage)
            except Skipped:
                pass
        measured = _peak(stage.memory) if stage.state not in ("Cached", "Skipped") else None
        if stage.state == "Cached":  # run before: its recorded peak, planned as the first stage of a process
            measured = peaks([stage.plan.run_id]).get(stage.plan.run_id)
            p = planned([label])
        else:  # planned after the stages this process computed before it (what they left resident, a server)
            ran.append(label)
            p = planned(ran)
        rows.append((label, measured and measured / 1e3, p.host_bytes / 1e9, sampler.peak, p.sampler_bytes / 1e9,
                     time.perf_counter() - t0, stage.state))
        print(f"{label}: {stage.state}, measured {measured} MB, sampler {sampler.peak:.2f} GB", flush=True)

    print(f"\nprofile {a.profile}, shortened: steps {a.steps}, limit {a.limit}, valid_limit {a.valid_limit}, "
          f"micro-batch {a.micro_batch_size}, choice micro-batch {a.choice_micro_batch_size}")
    print(f"{'stage':<32} {'measured GB':>11} {'plan GB':>8} {'plan/meas':>9} {'sampler GB':>10} {'plan':>6} "
          f"{'plan/meas':>9} {'s':>6}")
    for label, m, p, sm, sp, secs, state in rows:
        r = f"{p / m:9.2f}" if m else f"{'-':>9}"
        # under 0.5 GB: no server ran beside the stage in this process (a sandboxed judge was all it saw), though
        # the plan counts one started by an earlier stage of a whole run (flows/plan.py)
        rs = f"{sp / sm:9.2f}" if sm > 0.5 and sp else f"{'-':>9}"
        print(f"{label:<32} {m if m else float('nan'):11.2f} {p:8.2f} {r} {sm:10.2f} {sp:6.2f} {rs} {secs:6.0f}"
              + ("" if m else f"  ({state}: nothing measured)"))


if __name__ == "__main__":
    main()
