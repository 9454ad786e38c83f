"""Self-adaptation (paper §3.3): pass 1 decides which expert (or mixture) answers, pass 2 answers.

A strategy is one module plus one `register_strategy` call (`dispatch.py` holds the interface); every
module here is imported (`import_submodules`).
"""

from t2core.adapt.dispatch import (
    Decision,
    ExpertSet,
    Strategy,
    StrategyInputs,
    check_strategy,
    get_strategy,
    register_strategy,
    strategy_class,
    strategy_names,
)
from t2core.registry import import_submodules
from t2core.tasks.categories import CATEGORIES

import_submodules(__name__, __path__)  # each module registers what it defines

__all__ = ["CATEGORIES", "Decision", "ExpertSet", "Strategy", "StrategyInputs", "check_strategy", "get_strategy", "register_strategy", "strategy_class", "strategy_names"]
