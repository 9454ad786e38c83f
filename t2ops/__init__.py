"""Recorded operations: the one path from a request to a recorded result.

Each operation (svd, evaluation, training, baseline) is one module with
- a typed, frozen request (what to do; settings resolved once, validated on construction),
- `plan(request, ident)`: the run's content id from the model's identity (`ModelIdent`: weights
  hash, target names) without loading the model — what Prefect cache keys and reuse checks use,
- `run(request, loaded, cat)`: plan → reuse if the catalog has it → mark running → run → record
  (or mark failed), through `lifecycle.recorded`.
The CLI commands and the Prefect tasks both call `run`; neither has its own orchestration.
This layer joins t2core (pure) and the catalog; it never imports Prefect or Typer.
"""
