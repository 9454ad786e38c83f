"""`t2`: run the pipeline and query the catalog (Typer + rich).

Commands that load a model or train take `--seed`; user errors print one red line and exit with code 2.
Each command group is one module in `t2cli/commands/`, imported here in the order `t2 --help` lists them.
"""

from __future__ import annotations

import importlib
import sys

from t2cli.common import app

COMMAND_GROUPS = ("info", "svd", "evaluate", "train", "adapt", "transfer", "inspect", "catalog", "flows")
for _group in COMMAND_GROUPS:
    importlib.import_module(f"t2cli.commands.{_group}")  # registers its commands on `app`


def main() -> None:
    from t2cli import lifetime

    lifetime.install()
    app()


if __name__ == "__main__":
    sys.exit(main())
