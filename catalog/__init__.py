"""DuckDB catalog of models, decompositions, datasets, runs, metrics, samples and experts.

A thin adapter around t2core results; t2core never imports this package.
"""

from catalog.db import Catalog, CatalogBusyError, default_path
from catalog.storage import CatalogStorageError

__all__ = ["Catalog", "CatalogBusyError", "CatalogStorageError", "default_path"]
