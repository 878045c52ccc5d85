"""The loop: the train → evaluate → gate → register pipeline, and (to come) retraining."""

from shipyard.loop.pipeline import TrainOutcome, train_and_register

__all__ = ["TrainOutcome", "train_and_register"]
