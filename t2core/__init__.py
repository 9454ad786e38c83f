"""t2core: the pure library behind t2 (Transformer-Squared, arXiv 2501.06252).

It never imports prefect or duckdb: flows, the catalog and the CLI are thin
adapters around what lives here.
"""

from t2core.errors import T2Error

__all__ = ["T2Error"]
__version__ = "0.1.0"
