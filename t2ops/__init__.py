"""Operations: the one path from a request to a result the catalog records.

Each operation (svd, evaluation, training, baseline, fewshot, adaptation, pick, transfer) is one
module with a typed, frozen request (settings resolved once, validated on construction) and an
operation object `OP` (t2ops/operation.py): `plan` (pure: the run id, its row, its inputs, from the
model's identity), `done` (the outcome of a completed run, read back) and `run` (produces the
artifacts and returns the records, writing nothing). `catalog.execute` runs them for the CLI and the
Prefect tasks alike. This layer never imports the catalog, Prefect or Typer.
"""
