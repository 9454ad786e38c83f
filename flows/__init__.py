"""Prefect flows around t2core (thin adapters: orchestration, caching, catalog writes).

Environment set here, before prefect is imported by the submodules:
- telemetry off (offline machines) unless the user chose otherwise;
- task results persist under `T2_HOME/prefect-results`, so a rerun in a new process
  (after a crash) finds the cached results of the tasks that finished.
"""

import os

from t2core.paths import t2_home

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(t2_home() / "prefect-results"))
if os.environ.get("PREFECT_HOME"):  # prefect's ephemeral server cannot create its sqlite file otherwise
    os.makedirs(os.path.expanduser(os.environ["PREFECT_HOME"]), exist_ok=True)
