"""Cross-model transfer of SVF experts (paper §4.4), across shapes too."""

from t2core.transfer.controls import CONTROLS
from t2core.transfer.mapping import Mapping, plan_mapping, resample, slot, source_layer
from t2core.transfer.transfer import Destination, transfer_expert

__all__ = ["CONTROLS", "Destination", "Mapping", "plan_mapping", "resample", "slot", "source_layer",
           "transfer_expert"]
