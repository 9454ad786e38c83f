"""Serve every flow (`flows.listing`) as a deployment against the configured Prefect API.

    prefect server start            # in one shell (or any PREFECT_API_URL)
    python -m flows.serve --profile tiny
    prefect deployment run full-paper/full-paper --watch

The served process polls for runs and executes them; `--profile` sets the deployment's
default `profile` parameter (override per run with `--param profile=smol`).
"""

from __future__ import annotations

import argparse

from flows.listing import FLOWS


def serve(profile: str = "smol", limit: int | None = None) -> None:
    """Every flow of `flows.listing` as a deployment named after it, with the profile's defaults."""
    from prefect import serve as prefect_serve
    from prefect.types.entrypoint import EntrypointType

    from t2core.errors import ConfigError
    from t2core.profiles import get_profile

    prof = get_profile(profile)  # fail early on a bad name
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: give the most flow runs at once, >= 1 (or leave it out: no limit).")
    # module entrypoints: runs work from any working directory where t2 is installed
    deployments = [FLOWS.get(n).flow.to_deployment(name=n, parameters=FLOWS.get(n).defaults(prof),
                                                   entrypoint_type=EntrypointType.MODULE_PATH)
                   for n in FLOWS.names()]
    print(serve_banner(profile))
    prefect_serve(*deployments, limit=limit, print_starting_message=False)


def serve_banner(profile: str) -> str:
    """What `t2 serve` says before it polls: the exact commands (Prefect names a deployment `flow/deployment`,
    so `prefect deployment run full-paper` alone is refused), where runs read and write, and what stopping does."""
    names = [f"{FLOWS.get(n).flow.name}/{n}" for n in FLOWS.names()]
    return "\n".join([
        f"serving {len(names)} deployments (default profile {profile}): {', '.join(names)}",
        "run one from another shell:  prefect deployment run full-paper/full-paper --watch",
        "  (a profile of your own: --param profile=tiny; a part: --param stages='train:mbpp')",
        "runs execute in this process, so they use this shell's T2_HOME, T2_DATA_DIR and T2_CACHE_DIR;",
        "stop with Ctrl-C: the deployments are paused until `t2 serve` runs again.",
    ])


def deploy(pool: str, profile: str = "smol") -> list[str]:
    """Every flow of `flows.listing` as a deployment on the process work pool `pool` (created if missing) of
    the Prefect server at PREFECT_API_URL; `prefect worker start --pool <pool>` on any machine with t2
    installed then runs them. Returns the deployments' names."""
    import prefect
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.types.entrypoint import EntrypointType
    from prefect.workers.process import ProcessWorker

    from flows.runners import check_api
    from t2core.errors import ConfigError
    from t2core.profiles import get_profile

    prof = get_profile(profile)  # fail early on a bad name
    if not pool or "/" in pool or pool != pool.strip():
        raise ConfigError(f"--pool {pool!r}: a work pool name is a non-empty word without '/' (e.g. t2).")
    check_api()
    with get_client(sync_client=True) as client:
        try:
            found = client.read_work_pool(pool)
        except ObjectNotFound:
            found = client.create_work_pool(WorkPoolCreate(
                name=pool, type="process", base_job_template=ProcessWorker.get_default_base_job_template()))
        if found.type != "process":
            raise ConfigError(f"work pool {pool!r} is of type {found.type!r}; t2 deploys to a process pool: pass "
                              "another --pool name (it is created).")
    deployments = [FLOWS.get(n).flow.to_deployment(name=n, parameters=FLOWS.get(n).defaults(prof),
                                                   entrypoint_type=EntrypointType.MODULE_PATH)
                   for n in FLOWS.names()]
    prefect.deploy(*deployments, work_pool_name=pool, build=False, push=False, print_next_steps_message=False,
                   ignore_warnings=True)
    return [f"{FLOWS.get(n).flow.name}/{n}" for n in FLOWS.names()]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smol", help="default profile of the full-paper deployment")
    ap.add_argument("--limit", type=int, default=None, help="max concurrent flow runs")
    args = ap.parse_args(argv)
    serve(args.profile, args.limit)


if __name__ == "__main__":
    main()
