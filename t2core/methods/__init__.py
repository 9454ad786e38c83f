"""The methods that make experts and adapters, one file each (t2core/methods/base.py says what an entry holds)."""

from t2core.methods.base import (
    Method,
    adapter_products,
    get_method,
    method_names,
    method_of,
    method_of_product,
    register_method,
    sampler_for,
    selectors,
)
from t2core.registry import import_submodules

import_submodules(__name__, __path__)  # each module registers its method

__all__ = ["Method", "adapter_products", "get_method", "method_names", "method_of", "method_of_product",
           "register_method", "sampler_for", "selectors"]
