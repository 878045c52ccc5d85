"""Serving: endpoints, request validation, fast prediction (DESIGN.md section 3, serve/).

Endpoints and routing are imported eagerly: they are plain records and arithmetic, what the
quick CLI commands need. Everything else loads on first use: `from shipyard.serve import
create_app` works, while `shipyard.serve.endpoints` alone does not pay for a web stack (the HTTP
app and its runner load Starlette and uvicorn) nor for NumPy, Arrow and the model libraries
(batch scoring, request decoding, the fast path and the prediction log).

Hot-path records: what is built once per request (`Batch`, `Block`, `Output`, `Choice`, the
handlers' `Answer`, the log's `Answered`, the validation's `_Options`) is a slotted dataclass
that is not `frozen`, and is not changed after it is built. A frozen dataclass sets each field
through `object.__setattr__`: for these seven, 8% of the instructions the app spent on a one-row
prediction at 32 connections (callgrind, `benchmarks/serving`'s request), for nothing a
request needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.core.lazy import lazy_exports
from shipyard.serve.endpoints import (
    advance_canary,
    create_endpoint,
    get_endpoint,
    list_endpoints,
    promote_canary,
    revisions,
    rollback_canary,
    set_champion,
    set_flags,
    set_route,
    stop_canary,
)
from shipyard.serve.router import CanaryGuard, Choice, Decision, Router, WindowStats

if TYPE_CHECKING:
    from shipyard.serve.app import create_app
    from shipyard.serve.batch import score_file
    from shipyard.serve.fastpath import Output, Predictor, compile_predictor
    from shipyard.serve.inputs import Batch, InputError, decode, from_oip, to_columns
    from shipyard.serve.predlog import PredictionLog, labelled, read_predictions, record_feedback
    from shipyard.serve.runtime import ServeOptions
    from shipyard.serve.server import run

_LAZY = {
    "create_app": "shipyard.serve.app",
    "score_file": "shipyard.serve.batch",
    "Output": "shipyard.serve.fastpath",
    "Predictor": "shipyard.serve.fastpath",
    "compile_predictor": "shipyard.serve.fastpath",
    "Batch": "shipyard.serve.inputs",
    "InputError": "shipyard.serve.inputs",
    "decode": "shipyard.serve.inputs",
    "from_oip": "shipyard.serve.inputs",
    "to_columns": "shipyard.serve.inputs",
    "PredictionLog": "shipyard.serve.predlog",
    "labelled": "shipyard.serve.predlog",
    "read_predictions": "shipyard.serve.predlog",
    "record_feedback": "shipyard.serve.predlog",
    "ServeOptions": "shipyard.serve.runtime",
    "run": "shipyard.serve.server",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "Batch",
    "CanaryGuard",
    "Choice",
    "Decision",
    "InputError",
    "Output",
    "PredictionLog",
    "Predictor",
    "Router",
    "ServeOptions",
    "WindowStats",
    "advance_canary",
    "compile_predictor",
    "create_app",
    "create_endpoint",
    "decode",
    "from_oip",
    "get_endpoint",
    "labelled",
    "list_endpoints",
    "promote_canary",
    "read_predictions",
    "record_feedback",
    "revisions",
    "rollback_canary",
    "run",
    "score_file",
    "set_champion",
    "set_flags",
    "set_route",
    "stop_canary",
    "to_columns",
]
