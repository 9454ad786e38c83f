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

    from t2core.profiles import get_profile

    prof = get_profile(profile)  # fail early on a bad name
    # module entrypoints: runs work from any working directory where t2 is installed
    deployments = [FLOWS.get(n).flow.to_deployment(name=n, parameters=FLOWS.get(n).defaults(prof),
                                                   entrypoint_type=EntrypointType.MODULE_PATH)
                   for n in FLOWS.names()]
    prefect_serve(*deployments, limit=limit)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smol", help="default profile of the full-paper deployment")
    ap.add_argument("--limit", type=int, default=None, help="max concurrent flow runs")
    args = ap.parse_args(argv)
    serve(args.profile, args.limit)


if __name__ == "__main__":
    main()
