"""Where a flow's stages run: one after another in the flow's process (`local`, the default), or on a
Dask cluster (`dask`: prefect-dask's DaskTaskRunner): a LocalCluster of N worker processes, one that
someone started with `dask scheduler` / `dask worker` (`address`), or on a machine with CUDA devices
one worker per GPU group (`gpus_per_worker`), each seeing only its own devices."""

from __future__ import annotations

from t2core import threads
from t2core.errors import ConfigError, UnknownNameError

RUNNERS = ("local", "dask")


def check_runner(runner: str) -> str:
    if runner not in RUNNERS:
        raise UnknownNameError("runner", runner, list(RUNNERS))
    return runner


def check_address(address: str, timeout_s: float = 5.0) -> str:
    """`address` (tcp://HOST:PORT) if a Dask scheduler answers there; else one line saying what to do."""
    import socket
    from urllib.parse import urlparse

    u = urlparse(address if "://" in address else f"tcp://{address}")
    if u.scheme != "tcp" or not u.hostname or not u.port:
        raise ConfigError(f"--address {address!r} is not tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786).")
    try:
        with socket.create_connection((u.hostname, u.port), timeout=timeout_s):
            return address
    except OSError as e:
        raise ConfigError(f"no Dask scheduler answers at {address} ({e.strerror or e}); start one with `dask "
                          "scheduler` there, or drop --address for a LocalCluster on this machine.") from e


def check_api(timeout_s: float = 10.0) -> str:
    """The Prefect API URL this process is configured with, if a server answers there; else one line."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise ConfigError("this needs a Prefect server that outlives the command: start one with `prefect server "
                          "start` and set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api).")
    with get_client(sync_client=True) as client:
        failed = client.api_healthcheck()
    if failed is not None:
        raise ConfigError(f"the Prefect server at PREFECT_API_URL={url} does not answer ({type(failed).__name__}); "
                          "start it with `prefect server start`, or fix PREFECT_API_URL.")
    return url


def _api_env() -> dict[str, str]:
    """The Prefect API the flow's process talks to, for its workers: without it each worker process would
    start an ephemeral API server of its own (seconds each, and the stages' task runs in other servers)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()  # the process's ephemeral server (a singleton), started if need be
        if not server.running:
            server.start()
        url = server.api_url
    return {"PREFECT_API_URL": url}


def gpu_worker_specs(n_gpus: int, gpus_per_worker: int, workers: int | None, share: int,
                     api: dict[str, str] | None = None) -> dict:
    """SpecCluster worker specs: worker i sees GPUs [i*g, (i+1)*g) through CUDA_VISIBLE_DEVICES and offers
    the Dask resource GPU=g, so a stage that asks for GPU=1 lands on a worker with a free one."""
    from distributed import Nanny

    n = workers or n_gpus // gpus_per_worker
    if n < 1 or n * gpus_per_worker > n_gpus:
        raise ConfigError(f"{n or 0} workers x {gpus_per_worker} GPUs do not fit the {n_gpus} GPUs here; lower "
                          "--workers or --gpus-per-worker.")
    return {i: {"cls": Nanny, "options": {
        "nthreads": 1, "resources": {"GPU": gpus_per_worker},
        "env": {"CUDA_VISIBLE_DEVICES": ",".join(str(d) for d in range(i * gpus_per_worker, (i + 1) * gpus_per_worker)),
                threads.ENV: str(share), "OMP_NUM_THREADS": str(share), **(api or {})}}}
        for i in range(n)}


def dask_task_runner(address: str | None = None, workers: int | None = None, gpus_per_worker: int | None = None):
    """A DaskTaskRunner on `address`, or on a cluster of this machine: a LocalCluster of `workers` processes
    (default 2) each held to its share of the cores (never more threads than cores, `t2core/threads.py`),
    or, with CUDA devices and `gpus_per_worker`, one worker per group of GPUs."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    import torch

    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus_per_worker:
        if not n_gpus:
            raise ConfigError(f"--gpus-per-worker {gpus_per_worker}: this machine has no CUDA device; drop it.")
        n = workers or n_gpus // gpus_per_worker
        from distributed import Scheduler

        return DaskTaskRunner(cluster_class="distributed.SpecCluster", cluster_kwargs={
            "workers": gpu_worker_specs(n_gpus, gpus_per_worker, workers, threads.split(threads.budget(), n)[-1],
                                        _api_env()),
            "scheduler": {"cls": Scheduler, "options": {"dashboard_address": ":0"}}})
    n = workers or 2
    share = threads.split(threads.budget(), n)[-1]
    return DaskTaskRunner(cluster_kwargs={
        "n_workers": n, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0",
        "env": {threads.ENV: str(share), "OMP_NUM_THREADS": str(share), "MKL_NUM_THREADS": str(share),
                **_api_env()}})
