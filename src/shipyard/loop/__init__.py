"""The loop: train → evaluate → gate → register, monitoring endpoints, retraining and rollouts.

The pipeline pulls in the trainer, the evaluation and the registry's model libraries, so it
loads on first use: `shipyard.loop.rollouts` alone (`shipyard loop status`) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.core.lazy import lazy_exports

if TYPE_CHECKING:
    from shipyard.loop.pipeline import TrainOutcome, train_and_register

_LAZY = {
    "TrainOutcome": "shipyard.loop.pipeline",
    "train_and_register": "shipyard.loop.pipeline",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = ["TrainOutcome", "train_and_register"]
