"""The experts-api flow (issue 37): the tiny profile's experts trained, exported into a folder and served by
`t2 api`'s server in one `t2 run`; the packages verify and import into another T2_HOME; a second run reads the
experts and the exports back instead of redoing them, serves them on a free port, and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, catalog_rows, t2_cli, t2_inproc

openai = pytest.importorskip("openai")

TASKS = ("gsm8k", "mbpp", "arc_easy", "arc_easy_cloze")  # the tiny profile's training tasks
RUN = ("run", "experts-api", "--profile", "tiny", "--strategy", "cls-expert")  # cls-expert: the dispatch expert too


@pytest.fixture(scope="module")
def exported(tmp_path_factory, data_dir):
    """(home, out, env): `t2 run experts-api --no-serve --peft-rank auto` once, into a T2_HOME of its own."""
    root = tmp_path_factory.mktemp("experts-api")
    env = {"T2_HOME": str(root / "home"), "PREFECT_HOME": str(root / "prefect"), "T2_DATA_DIR": str(data_dir)}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PREFECT_API_URL", raising=False)  # an ephemeral Prefect API, whatever the shell points at
        r = t2_cli(*RUN, "--out", str(root / "out"), "--no-serve", "--peft-rank", "auto", env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return root / "home", root / "out", env


def test_the_flow_exports_every_expert_as_a_package_that_imports_elsewhere(exported, t2_home):
    from t2core.export import read_package

    home, out, _ = exported
    trained = dict(catalog_rows(home, "SELECT task, expert_id FROM experts WHERE method = 'svf'"))
    assert set(trained) == {*TASKS, "dispatch"}
    for task, eid in trained.items():
        pkg = read_package(out / "svf" / task)  # every file against the manifest, the expert against its id
        assert pkg.expert_id == eid and pkg.header.task == task
        lora = read_package(out / "peft" / task, kind=None)
        assert lora.manifest["kind"] == "peft-lora" and lora.expert_id == eid and lora.manifest["lora"]["asked"] == "auto"
        assert (out / "peft" / task / "adapter_model.safetensors").is_file()
    r = t2_inproc("experts", "import", str(out / "svf" / "mbpp"))  # this test's T2_HOME: a second one
    assert r.returncode == 0, r.stderr
    assert catalog_rows(t2_home, "SELECT expert_id, task FROM experts") == [(trained["mbpp"], "mbpp")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_second_run_reads_everything_back_serves_the_experts_and_stops_on_sigterm(exported, tmp_path):
    home, out, env = exported
    trains = "SELECT count(*) FROM runs WHERE kind = 'train'"
    before = catalog_rows(home, trains)
    port = _free_port()
    log = tmp_path / "serve.log"
    full_env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | env
    proc = subprocess.Popen([sys.executable, "-m", "t2cli.main", *RUN, "--out", str(out), "--port", str(port)],
                            env=full_env, cwd=REPO, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                listed = {m.id for m in client.models.list().data}
                break
            except openai.APIConnectionError:
                time.sleep(1)
        assert {"t2-auto", "base", *TASKS} <= listed
        raw = client.chat.completions.with_raw_response.create(
            model="mbpp", messages=[{"role": "user", "content": "Write is_even(n)."}], max_tokens=4)
        r = raw.parse()
        from t2core.export import read_package

        assert r.model == "mbpp" and raw.headers["x-t2-expert"] == f"expert {read_package(out / 'svf' / 'mbpp').expert_id}"
        auto = client.chat.completions.create(model="t2-auto", messages=[{"role": "user", "content": "12 * 7?"}],
                                              max_tokens=4)
        assert auto.model.startswith("t2-auto:")  # pass 1 by the classification expert the first run trained
        os.kill(proc.pid, signal.SIGTERM)  # what a cancelled deployment run's process gets
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens there any more
    text = log.read_text()
    assert all(f"{t}: svf:" in text and f"already exported as svf to {out / 'svf' / t}" in text
               for t in (*TASKS, "dispatch")), text[-3000:]
    assert catalog_rows(home, trains) == before  # the experts were read back from the catalog, not retrained
    deadline = time.monotonic() + 20
    while True:  # the temporary Prefect server and anything else the run started went with it
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "processes of the stopped run are still there"
        time.sleep(0.5)


def test_a_taken_port_is_one_line_before_anything_runs():
    """A port something else listens on is refused when the run is checked, not after an hour of training."""
    from t2api.launch import check_address
    from t2core.errors import ConfigError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"cannot listen on 127.0.0.1:{port} .*pick another --port"):
            check_address("127.0.0.1", port)
        check_address("127.0.0.1", port, bind=False)  # --no-serve: the port is not needed


@pytest.mark.slow
def test_the_served_deployment_serves_until_its_run_is_cancelled(exported, tmp_path):
    """`t2 serve` against a real `prefect server start`, then `prefect deployment run experts-api/experts-api
    --param profile=tiny --param out=...`: the endpoint answers, and `prefect flow-run cancel` stops it (the run
    ends Cancelled)."""
    import re

    home, _, env = exported
    api, port, out = _free_port(), _free_port(), tmp_path / "out"
    env = {**{k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}, **env,
           "PREFECT_API_URL": f"http://127.0.0.1:{api}/api", "PREFECT_UI_ENABLED": "false"}
    prefect = [sys.executable, "-m", "prefect"]
    logs = tmp_path / "logs"
    logs.mkdir()
    server = subprocess.Popen([*prefect, "server", "start", "--host", "127.0.0.1", "--port", str(api)], env=env,
                              stdout=open(logs / "server.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    served = None
    try:
        deadline = time.monotonic() + 120
        while subprocess.run([*prefect, "work-pool", "ls"], env=env, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline and server.poll() is None, (logs / "server.log").read_text()[-3000:]
            time.sleep(1)
        served = subprocess.Popen([sys.executable, "-m", "t2cli.main", "serve", "--profile", "tiny"], env=env,
                                  cwd=REPO, stdout=open(logs / "serve.log", "w"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        deadline = time.monotonic() + 120
        while subprocess.run([*prefect, "deployment", "inspect", "experts-api/experts-api"], env=env,
                             capture_output=True).returncode != 0:
            assert time.monotonic() < deadline and served.poll() is None, (logs / "serve.log").read_text()[-3000:]
            time.sleep(1)
        run = subprocess.run([*prefect, "deployment", "run", "experts-api/experts-api", "--param", "profile=tiny",
                              "--param", f"out={out}", "--param", f"port={port}"], env=env, capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        flow_run = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout).group(1)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        deadline = time.monotonic() + 300
        while True:
            assert time.monotonic() < deadline, (logs / "serve.log").read_text()[-3000:]
            try:
                r = client.chat.completions.create(model="gsm8k", max_tokens=4,
                                                   messages=[{"role": "user", "content": "12 * 7?"}])
                break
            except openai.APIConnectionError:
                time.sleep(1)
        assert r.model == "gsm8k" and (out / "svf" / "gsm8k" / "t2-package.json").is_file()
        cancel = subprocess.run([*prefect, "flow-run", "cancel", flow_run], env=env, capture_output=True, text=True)
        assert cancel.returncode == 0, cancel.stdout + cancel.stderr
        deadline = time.monotonic() + 60
        while True:  # the run's process is stopped: nothing listens on its port
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) != 0:
                    break
            assert time.monotonic() < deadline, (logs / "serve.log").read_text()[-3000:]
            time.sleep(1)
        deadline = time.monotonic() + 60
        while True:
            state = subprocess.run([*prefect, "flow-run", "inspect", flow_run], env=env, capture_output=True,
                                   text=True).stdout
            if "state_name='Cancelled'" in state:
                break
            assert time.monotonic() < deadline, state[-2000:]
            time.sleep(1)
    finally:
        for p in (served, server):
            if p is not None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
