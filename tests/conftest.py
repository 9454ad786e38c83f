"""Shared fixtures. Default tests need no network and no GPU.

- every test gets its own T2_HOME (catalog, artifacts) in a temp dir;
- converted models are shared across tests through T2_CACHE_DIR (default: <repo>/.t2-cache);
- tests that need the offline datasets use the `data_dir` fixture, which skips with a
  reason when the directory is absent.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("T2_CACHE_DIR", str(REPO / ".t2-cache"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Prefect's ephemeral API server gets 20 s to start by default; a busy 2-core machine has missed that
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@pytest.fixture(scope="session", autouse=True)
def _session_home(tmp_path_factory):
    """A temporary T2_HOME for the whole run, set before any module-scoped fixture builds an
    artifact: the user's real ~/.t2 is never written (each test then gets its own, below)."""
    saved = {k: os.environ.get(k) for k in ("T2_HOME", "T2_CATALOG")}
    os.environ["T2_HOME"] = str(tmp_path_factory.mktemp("t2home-session"))
    os.environ.pop("T2_CATALOG", None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def t2_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "t2home"
    monkeypatch.setenv("T2_HOME", str(home))
    monkeypatch.delenv("T2_CATALOG", raising=False)
    monkeypatch.delenv("T2_FAULT_AFTER", raising=False)
    return home


@pytest.fixture(scope="session")
def data_dir() -> Path:
    from t2core.paths import resolve_data_dir

    try:
        d = resolve_data_dir()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"datasets unavailable: {e}")
    if d is None:
        pytest.skip("no offline datasets: set T2_DATA_DIR to a copy of shared/datasets (see its README)")
    return d


@pytest.fixture(scope="session")
def tiny():
    from t2core.models import load_model

    return load_model("tiny-random", seed=0)


def t2_cli(*args: str, env: dict | None = None, timeout: float = 600):
    """Run the `t2` CLI in a subprocess (the way a user does) and return the CompletedProcess.

    Output goes through files, not pipes, and the process gets its own session that is
    killed afterwards: a crashed flow leaves Prefect's ephemeral server behind, which
    would otherwise hold the pipes open (and the port) forever.
    """
    import signal
    import subprocess
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "t2cli.main", *args], stdout=out, stderr=err, text=True,
                                env={**os.environ, **(env or {})}, cwd=REPO, start_new_session=True)
        try:
            rc = proc.wait(timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(proc.args, rc, out.read(), err.read())


def t2_inproc(*args: str):
    """Run a `t2` command in this process (Typer's test runner): the same exit code and the same
    stdout / stderr as `t2_cli`, without the 5-10 s a fresh interpreter spends importing torch and
    transformers. For commands whose point is their output, not a process boundary (kills, env)."""
    import subprocess

    from typer.testing import CliRunner

    from t2cli.main import app

    r = CliRunner().invoke(app, list(args))
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return subprocess.CompletedProcess(["t2", *args], r.exit_code, r.stdout, r.stderr)


def catalog_rows(home: Path, sql: str) -> list[tuple]:
    """All rows of `sql` against the catalog under `home` (connection closed before returning)."""
    import duckdb

    con = duckdb.connect(str(home / "catalog.duckdb"))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def random_experts(loaded, k: int, scale: float, seed: int):
    """(svd, policies, bank): k SVF experts of `loaded` whose z is 1 + scale·N(0, 1) (seeds seed..seed+k-1),
    on the "mlp" decomposition, stacked as an ExpertBank."""
    import torch

    from t2core.svd import ensure_svd, load_svd
    from t2core.svf import SVFPolicy, ranks_of, svf_weights
    from t2core.svf.bank import ExpertBank

    svd = load_svd(ensure_svd(loaded, "mlp"))
    policies = []
    for i in range(k):
        p = SVFPolicy(ranks_of(svd))
        g = torch.Generator().manual_seed(seed + i)
        p.load_raw_state({n: v + scale * torch.randn(v.shape, generator=g) for n, v in p.raw_state().items()})
        policies.append(p)
    return svd, policies, ExpertBank.of([svf_weights(p, svd, loaded.weights_hash) for p in policies])


def pytest_collection_modifyitems(config, items):
    """`vllm` tests need the environment `make vllm-env` creates: without it they are skipped with that
    hint, unless T2_REQUIRE_VLLM=1 (CI), where a missing environment must fail them, not hide them."""
    from t2core.errors import ConfigError
    from t2core.serving.vllm_env import ServerSettings

    if os.environ.get("T2_REQUIRE_VLLM") == "1":
        return
    try:
        ServerSettings().interpreter()
    except ConfigError as e:
        skip = pytest.mark.skip(reason=str(e))
        for item in items:
            if "vllm" in item.keywords:
                item.add_marker(skip)


def stored_expert_files(tiny, home, k: int, task: str = "gsm8k", seed: int = 21, scale: float = 0.3):
    """k random SVF experts of the tiny model saved as files (ExpertRef resolves them by path)."""
    from dataclasses import asdict

    from t2core.experts import ExpertRef
    from t2core.svf import ExpertHeader, SVFConfig, save_expert

    svd, policies, bank = random_experts(tiny, k, scale=scale, seed=seed)
    refs = []
    for i, p in enumerate(policies):
        header = ExpertHeader(base_weights_hash=tiny.weights_hash, model=tiny.alias, task=task,
                              svf=asdict(SVFConfig()), ranks={n: int(s.shape[0]) for n, (_, s, _) in svd.items()})
        refs.append(ExpertRef.resolve(str(save_expert(home / f"expert{seed}-{i}.safetensors", p, header))))
    return svd, bank, refs
