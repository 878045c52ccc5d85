"""The loop: the train → evaluate → gate → register pipeline, and (to come) retraining.

The pipeline pulls in the trainer, the evaluation and the registry's model libraries, so it
loads on first use: `shipyard.loop.rollouts` alone (`shipyard loop status`) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.loop.pipeline import TrainOutcome, train_and_register

_LAZY = {
    "TrainOutcome": "shipyard.loop.pipeline",
    "train_and_register": "shipyard.loop.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'shipyard.loop' has no attribute {name!r}")


__all__ = ["TrainOutcome", "train_and_register"]
