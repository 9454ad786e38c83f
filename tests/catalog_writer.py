"""A catalog writer process for tests/test_catalog.py (its own module: a spawned process imports only this
and the catalog, not torch)."""

from catalog import Catalog


def write_rows(path: str, worker: int, n: int) -> None:
    cat = Catalog(path, timeout_s=120)
    for i in range(n):
        cat.write(lambda con, i=i: con.execute("INSERT INTO metrics VALUES (?, ?, ?)", [f"w{worker}", f"m{i}", float(i)]))
