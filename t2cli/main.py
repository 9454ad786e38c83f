"""`t2`: run the pipeline and query the catalog (Typer + rich).

Commands that load a model or train take `--seed`; user errors print one red line and exit with code 2.
Each command group is one module in `t2cli/commands/`, imported here in the order `t2 --help` lists them.
"""

from __future__ import annotations

import importlib
import os
import sys

# Prefect's in-process API server gets 120 s to start (its default, 20 s, is missed on a loaded 2-core
# machine: issue 36); a user's own value wins. Set before Prefect reads its settings.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from t2cli.common import app, catalog_app, experts_app, inspect_app, list_registries_in_help  # noqa: E402 - after the setting above

COMMAND_GROUPS = ("info", "svd", "evaluate", "train", "adapt", "transfer", "inspect", "experts", "catalog", "flows", "plan",
                  "api")
for _group in COMMAND_GROUPS:
    importlib.import_module(f"t2cli.commands.{_group}")  # registers its commands on `app`
list_registries_in_help(app, catalog_app, inspect_app, experts_app)  # help texts read the registries when shown


def main() -> None:
    from t2cli import lifetime

    lifetime.install()
    app()


if __name__ == "__main__":
    sys.exit(main())
