"""Serve the `full-paper` and `svd` deployments against the configured Prefect API.

    prefect server start            # in one shell (or any PREFECT_API_URL)
    python -m flows.serve --profile tiny
    prefect deployment run full-paper/full-paper --watch

The served process polls for runs and executes them; `--profile` sets the deployment's
default `profile` parameter (override per run with `--param profile=smol`).
"""

from __future__ import annotations

import argparse

from flows.pipelines import ablations_flow, full_paper_flow, svd_flow, train_expert_flow, transfer_flow


def serve(profile: str = "smol", limit: int | None = None) -> None:
    from prefect import serve as prefect_serve
    from prefect.types.entrypoint import EntrypointType

    from t2core.profiles import get_profile

    prof = get_profile(profile)  # fail early on a bad name
    # module entrypoints: runs work from any working directory where t2 is installed
    full = full_paper_flow.to_deployment(name="full-paper", parameters={"profile": prof.name},
                                         entrypoint_type=EntrypointType.MODULE_PATH)
    svd = svd_flow.to_deployment(name="svd", parameters={"model": prof.model, "targets": prof.targets},
                                 entrypoint_type=EntrypointType.MODULE_PATH)
    train = train_expert_flow.to_deployment(name="train-expert", parameters={"profile": prof.name},
                                            entrypoint_type=EntrypointType.MODULE_PATH)
    move = transfer_flow.to_deployment(name="transfer", parameters={"profile": prof.name},
                                       entrypoint_type=EntrypointType.MODULE_PATH)
    ablate = ablations_flow.to_deployment(name="ablations", parameters={"profile": prof.name},
                                          entrypoint_type=EntrypointType.MODULE_PATH)
    prefect_serve(full, svd, train, move, ablate, limit=limit)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smol", help="default profile of the full-paper deployment")
    ap.add_argument("--limit", type=int, default=None, help="max concurrent flow runs")
    args = ap.parse_args(argv)
    serve(args.profile, args.limit)


if __name__ == "__main__":
    main()
