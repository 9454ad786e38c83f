"""REINFORCE training of SVF experts (paper §3.2)."""

from t2core.rl.config import RLConfig
from t2core.rl.reinforce import CurvePoint, ReinforceTrainer, TrainResult, plan_training, train_run_id

__all__ = ["CurvePoint", "RLConfig", "ReinforceTrainer", "TrainResult", "plan_training", "train_run_id"]
