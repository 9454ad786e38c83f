"""Scale-out (issue 22): the staged flows on a Dask cluster record what the in-process run records, a
worker killed mid-run costs only its stage, and nothing outlives the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from tests.conftest import REPO, catalog_rows

# what must be equal between two runs of the same flow: rows per table, and every metric that is not a time
# (seconds, tokens per second, pass 1's fraction of the two passes' time)
TABLES = ("models", "decompositions", "datasets", "runs", "metrics", "samples", "experts", "curves")
# what a run computed, not how it ran (its time, its peak memory where it ran)
METRICS = ("SELECT run_id, name, round(value, 9) FROM metrics WHERE name NOT LIKE '%seconds%' AND name NOT LIKE "
           "'%per_s%' AND name NOT LIKE '%wall%' AND name <> 'pass1_fraction' AND name NOT LIKE 'peak_%' "
           "ORDER BY run_id, name")


def _rows(home):
    counts = {t: catalog_rows(home, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}
    status = catalog_rows(home, "SELECT run_id, kind, status, variant FROM runs ORDER BY run_id")
    samples = catalog_rows(home, "SELECT run_id, idx, output, correct FROM samples ORDER BY run_id, idx")
    return counts, status, catalog_rows(home, METRICS), samples


def _assert_same_rows(got, want) -> None:
    """Each part of `_rows` compared on its own, a failure naming only the rows that differ (the whole
    catalog would be cut off in the report)."""
    for part, g, w in zip(("counts", "runs", "metrics", "samples"), got, want, strict=True):
        if g != w:
            g, w = (g.items(), w.items()) if part == "counts" else (g, w)
            only_dask, only_local = sorted(set(g) - set(w), key=str), sorted(set(w) - set(g), key=str)
            raise AssertionError(f"{part} differ: dask only {only_dask[:12]}; local only {only_local[:12]}")


def _run(home, *args, kill_a_worker_after: float | None = None, timeout: float = 900, threads: int | None = None):
    """`t2 run full-paper --profile tiny ...` in its own session; with `kill_a_worker_after`, one Dask worker
    process is killed with SIGKILL once that many seconds have passed (and the run is still going).
    Returns (exit status, stdout, stderr, whether a worker was killed)."""
    env = {**os.environ, "T2_HOME": str(home), "PREFECT_HOME": str(home / "prefect"),
           **({"T2_THREADS": str(threads)} if threads else {})}
    out, err = open(home.parent / f"{home.name}.out", "w+"), open(home.parent / f"{home.name}.err", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "t2cli.main", "run", "full-paper", "--profile", "tiny", *args],
                            stdout=out, stderr=err, env=env, cwd=REPO, start_new_session=True)
    killed = []

    def killer() -> None:
        deadline = time.monotonic() + kill_a_worker_after
        while proc.poll() is None:
            workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                       if "spawn_main" in " ".join(p.cmdline())]
            if time.monotonic() > deadline and workers:
                workers[0].send_signal(signal.SIGKILL)
                killed.append(workers[0].pid)
                return
            time.sleep(0.5)

    t = threading.Thread(target=killer, daemon=True) if kill_a_worker_after is not None else None
    if t:
        t.start()
    try:
        rc = proc.wait(timeout)
    finally:
        left = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    out.seek(0)
    err.seek(0)
    return rc, out.read(), err.read(), bool(killed), left


def _survivors(home) -> list[str]:
    """Processes still alive that were started for `home` (a scheduler, a worker, a server)."""
    mine = []
    for p in psutil.process_iter(["pid", "environ", "cmdline"]):
        try:
            if (p.info["environ"] or {}).get("T2_HOME") == str(home):
                mine.append(" ".join(p.info["cmdline"] or []))
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
    return mine


@pytest.mark.slow  # minutes on 2 cores: .ci/run runs it after the default suite
def test_a_dask_run_records_what_the_local_run_records_even_when_a_worker_dies(tmp_path, data_dir):
    from tests.test_flows import LOCAL_RUN

    local, dask = (LOCAL_RUN[0] if LOCAL_RUN else tmp_path / "local"), tmp_path / "dask"
    if not LOCAL_RUN:  # run alone: make the in-process reference here
        # one thread per stage, as each of the 2 workers on 2 cores has: float sums then add up in the same order
        rc, out, err, _, _ = _run(local, threads=1)
        assert rc == 0, err[-3000:]
    rc, out, err, killed, _ = _run(dask, "--runner", "dask", "--workers", "2", kill_a_worker_after=20)
    assert killed, "the run ended before a worker could be killed"
    if rc != 0:  # the stage on the killed worker failed the flow: a rerun completes from the catalog
        rc, out, err, _, _ = _run(dask, "--runner", "dask", "--workers", "2")
    assert rc == 0, err[-3000:]
    assert "dask-" in out or "tcp://" in out or "Worker" in out, out  # the table names the worker of each stage
    _assert_same_rows(_rows(dask), _rows(local))
    assert catalog_rows(dask, "SELECT count(*) FROM runs WHERE status <> 'completed'") == [(0,)]
    time.sleep(2)
    assert _survivors(dask) == []


def test_bad_runner_options_are_one_line_each(tmp_path):
    from tests.conftest import t2_inproc

    for args, says in [(("--runner", "spark"), "runner 'spark'"),
                       (("--address", "tcp://h:8786"), "add --runner dask"),
                       (("--runner", "dask", "--workers", "0"), "--workers 0"),
                       (("--runner", "dask", "--address", "tcp://h:8786", "--workers", "2"), "only for a LocalCluster")]:
        r = t2_inproc("run", "full-paper", "--profile", "tiny", *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert says in (r.stdout + r.stderr), (args, r.stdout, r.stderr)
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = t2_inproc("run", "full-paper", "--profile", "tiny", "--runner", "dask", "--address", f"tcp://127.0.0.1:{port}")
    assert r.returncode == 2 and f"no Dask scheduler answers at tcp://127.0.0.1:{port}" in r.stdout + r.stderr
    r = t2_inproc("run", "svd", "--runner", "dask")
    assert r.returncode == 2 and "apply to the staged flows" in r.stdout + r.stderr
    r = t2_inproc("run", "full-paper", "--profile", "tiny", "--runner", "dask", "--gpus-per-worker", "1")
    assert r.returncode == 2 and "no CUDA device" in r.stdout + r.stderr


def test_gpu_workers_each_see_their_own_devices_and_offer_them_as_a_resource():
    from flows.runners import gpu_worker_specs
    from t2core.errors import ConfigError

    specs = gpu_worker_specs(n_gpus=4, gpus_per_worker=2, workers=None, share=8)
    assert [s["options"]["env"]["CUDA_VISIBLE_DEVICES"] for s in specs.values()] == ["0,1", "2,3"]
    assert all(s["options"]["resources"] == {"GPU": 2} and s["options"]["env"]["T2_THREADS"] == "8"
               for s in specs.values())
    assert len(gpu_worker_specs(3, 1, None, 1)) == 3
    with pytest.raises(ConfigError, match="3 workers x 2 GPUs do not fit the 4 GPUs"):
        gpu_worker_specs(4, 2, 3, 1)


def test_deploy_refuses_an_unreachable_prefect_and_a_bad_pool_in_one_line(monkeypatch):
    import socket

    from tests.conftest import t2_cli, t2_inproc

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = t2_cli("deploy", "--pool", "t2", "--profile", "tiny", env={"PREFECT_API_URL": f"http://127.0.0.1:{port}/api"})
    assert r.returncode == 2 and "does not answer" in r.stderr and "prefect server start" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    r = t2_inproc("deploy", "--pool", "a/b", "--profile", "tiny")
    assert r.returncode == 2 and "a work pool name is a non-empty word" in r.stdout + r.stderr
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    r = t2_cli("deploy", "--pool", "t2", "--profile", "tiny")
    assert r.returncode == 2 and "needs a Prefect server that outlives the command" in r.stderr, r.stderr


def test_a_stage_whose_artifact_the_flow_cannot_see_is_refused_with_the_path(tmp_path):
    """A worker that wrote under another T2_HOME (not shared): the stage fails with the path, nothing recorded."""
    from catalog import Catalog
    from flows.stages import Stage, StageResult, Stages
    from t2core.errors import T2Error
    from t2ops.records import RunRow, TrainingRecord

    S = Stages(cat=Catalog(tmp_path / "c.duckdb"))
    row = RunRow("train-x", "train", "m", "h")
    plan = type("P", (), {"run_id": "train-x", "row": row, "outputs": (("experts", "train-x"),)})()
    stage = Stage("train:gsm8k", None, plan)
    rec = TrainingRecord(row, "svf:x", "/elsewhere", "mlp", "svf-pg", {})
    with pytest.raises(T2Error, match=r"ran on dask-3, but its artifact .*experts/train-x is not there .* shared"):
        S._collect(stage, lambda: StageResult(None, (rec,), "dask-3", 1.0))
    assert S.cat.query("SELECT count(*) FROM experts")[1] == [(0,)]


@pytest.mark.slow
def test_deploy_to_a_work_pool_and_run_it_with_a_process_worker(tmp_path, data_dir):
    """`t2 deploy --pool` against a real `prefect server start`, a process worker, then `prefect deployment
    run full-paper/full-paper`: it completes, and its records equal the in-process run's."""
    from tests.test_flows import _free_port

    home, local = tmp_path / "pool", tmp_path / "local"
    port = _free_port()
    env = {**os.environ, "T2_HOME": str(home), "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    prefect = [os.path.join(os.path.dirname(sys.executable), "prefect")]
    logs = tmp_path / "logs"
    logs.mkdir()
    server = subprocess.Popen([*prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=open(logs / "server.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    worker = None
    try:
        deadline = time.monotonic() + 120
        while subprocess.run([*prefect, "work-pool", "ls"], env=env, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline and server.poll() is None, (logs / "server.log").read_text()[-3000:]
            time.sleep(1)
        dep = subprocess.run([sys.executable, "-m", "t2cli.main", "deploy", "--pool", "t2-test", "--profile", "tiny"],
                             env=env, capture_output=True, text=True, cwd=REPO)
        assert dep.returncode == 0 and "full-paper/full-paper" in dep.stdout, dep.stdout + dep.stderr
        worker = subprocess.Popen([*prefect, "worker", "start", "--pool", "t2-test"], env=env, cwd=logs,
                                  stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        run = subprocess.run([*prefect, "deployment", "run", "full-paper/full-paper", "--watch",
                              "--watch-timeout", "900"], env=env, capture_output=True, text=True, timeout=960)
        assert run.returncode == 0, run.stdout[-2000:] + (logs / "worker.log").read_text()[-3000:]
    finally:
        for p in (worker, server):
            if p is not None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    rc, _, err, _, _ = _run(local)
    assert rc == 0, err[-3000:]
    assert _rows(home) == _rows(local)  # the worker's flow ran its stages in its own process, like this one


def test_a_stage_reports_its_progress_as_i_of_n_with_an_eta():
    from types import SimpleNamespace

    from flows.progress import stage_hooks

    lines = []
    log = SimpleNamespace(info=lambda fmt, *a: lines.append(fmt % a))
    h = stage_hooks("train:gsm8k", log, 4)
    h.on_log(SimpleNamespace(step=1, mean_reward=0.5, kl=0.01, valid_acc=None))
    h.on_log(SimpleNamespace(step=2, mean_reward=-0.25, kl=0.02, valid_acc=0.375))
    h.on_log(SimpleNamespace(step=3, mean_reward=0.0, kl=0.03, valid_acc=None))  # the last validation stays shown
    assert lines[0].startswith("train:gsm8k: step 1/4, reward +0.500, kl 0.0100 (") and "ETA" in lines[0]
    assert "step 3/4, reward +0.000, kl 0.0300, valid 0.375 (" in lines[2]
    lines.clear()
    ev = stage_hooks("eval:math", log, 20)
    for _ in range(10):
        ev.progress(2)  # every tenth of the slice: 2, 4, ..., 20
    assert [x.split(" items")[0] for x in lines] == [f"eval:math: {i}/20" for i in range(2, 21, 2)]
    lines.clear()
    stage_hooks("few-shot:math", log, 5).on_generation(SimpleNamespace(generation=2, best_fitness=(0.5, -1.0)))
    stage_hooks("baseline:lora", log, 10).on_log(10, 1.25)
    assert lines[0].startswith("few-shot:math: CEM generation 2/5, best accuracy 0.500 (")
    assert lines[1].startswith("baseline:lora: step 10/10, loss 1.2500 (")


def test_two_workers_writing_the_same_artifact_at_once_leave_one_valid_copy(tmp_path):
    import multiprocessing as mp

    from t2core.artifacts import ArtifactStore
    from tests import artifact_writer

    start = time.time() + 2
    with mp.get_context("spawn").Pool(2) as pool:
        keys = pool.starmap(artifact_writer.write_same, [(str(tmp_path), start)] * 2)
    assert keys == ["k1", "k1"]
    store = ArtifactStore(tmp_path)
    store.verify("experts", "k1")  # hashes match the manifest
    assert sorted(p.name for p in (tmp_path / "experts").iterdir()) == ["k1"]  # no half-written copy left
