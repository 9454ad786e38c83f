"""`t2 plan`: what each stage of a flow needs before anything starts (memory, disk, time; issue 35)."""

from __future__ import annotations

import typer

from t2cli.common import app, console, handle_errors, rich_table


def _gb(b: int) -> str:
    return f"{b / 1e9:.2f}"


def _time(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else (f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h")


@app.command()
@handle_errors
def plan(
    profile: str = typer.Option("smol", help="profile: {profiles} (see `t2 profiles`)"),
    flow: str = typer.Option("full-paper", help="full-paper, ablations or transfer"),
    gpus: int | None = typer.Option(None, help="GPUs to plan for (0: the CPU; default: those this machine has)"),
    gpu_gb: float = typer.Option(80.0, help="memory of each GPU in GB (default 80: an H100)"),
    memory_gb: float | None = typer.Option(None, help="host memory budget in GB (default: $T2_MEMORY_GB, else this "
                                                      "machine's memory less 15%)"),
    data_dir: str | None = typer.Option(None, help="dataset directory (prompt lengths are read from it)"),
    parts: bool = typer.Option(False, help="list each stage's memory by part (weights, factors, activations, ...)"),
) -> None:
    """Per stage: peak memory on the device and the host, disk written, an estimated time; then whether the
    profile fits these devices, and if not, what to change. Reads no weights: the paper profile plans here."""
    from flows.plan import fit_plan
    from t2core.plan.devices import devices_for
    from t2core.profiles import get_profile

    prof = get_profile(profile)
    devices = devices_for(gpus, gpu_gb, memory_gb)
    p = fit_plan(prof, devices, flow, data_dir=data_dir)
    gpu = devices.gpu
    cols = ["stage", *(["device GB", "host GB"] if gpu else ["memory GB"]), "sampler GB", "disk GB", "time"]
    rows = [(s.label, *([_gb(s.device_bytes), _gb(s.host_bytes)] if gpu else [_gb(s.host_bytes)]),
             _gb(s.sampler_bytes) if s.sampler_bytes else "", _gb(s.disk) if s.disk >= 1e7 else "", _time(s.seconds))
            for s in p.stages]
    console.print(rich_table(f"plan: {flow} [{profile}] {prof.model} on {devices.describe()}", cols, rows,
                             whole=("stage",)))
    if parts:
        for s in p.stages:
            console.print(f"{s.label}: " + ", ".join(f"{n} {_gb(b)}" for n, b in s.parts if b), highlight=False)
    total = sum(s.seconds for s in p.stages)
    peak = p.device_peak if devices.gpu else p.host_peak
    console.print(f"peak {_gb(peak)} GB ({'per GPU' if devices.gpu else 'host'}), disk "
                  f"{_gb(sum(s.disk for s in p.stages))} GB, about {_time(total)} in all", highlight=False)
    why = p.misfit()
    if why is None:
        console.print("fits", highlight=False)
    else:
        console.print(f"does not fit: {why}; {p.advice()}", highlight=False)
