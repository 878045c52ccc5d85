"""Registry: signed model bundles, versions, aliases, statuses and loading (DESIGN.md section 3).

>>> v = register(ws, "credit-risk", pipeline, task="classification", signature=sig)
>>> set_alias(ws, v.ref, "champion")
>>> load_model(ws, "models:/credit-risk@champion").predict(frame)

Versions, aliases and statuses are imported eagerly; the bundle, native LightGBM and ONNX
modules, which pull in scikit-learn, LightGBM and skops, load on first use, so looking a
version up (as the endpoints and the quick CLI commands do) does not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.core.lazy import lazy_exports
from shipyard.registry.models import (
    get_document,
    get_profile,
    get_version,
    list_models,
    list_versions,
    load_model,
    parse_ref,
    register,
    remove_alias,
    set_alias,
    set_status,
)
from shipyard.registry.signature import signature_from_schema, with_carried

if TYPE_CHECKING:
    from shipyard.registry.bundle import TRUSTED_TYPES, LoadedModel, load_bundle, save_bundle
    from shipyard.registry.native import NativeLightGBM
    from shipyard.registry.onnx import OnnxModel, OnnxResult, compile_onnx, load_onnx

_LAZY = {
    "TRUSTED_TYPES": "shipyard.registry.bundle",
    "LoadedModel": "shipyard.registry.bundle",
    "load_bundle": "shipyard.registry.bundle",
    "save_bundle": "shipyard.registry.bundle",
    "NativeLightGBM": "shipyard.registry.native",
    "OnnxModel": "shipyard.registry.onnx",
    "OnnxResult": "shipyard.registry.onnx",
    "compile_onnx": "shipyard.registry.onnx",
    "load_onnx": "shipyard.registry.onnx",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "TRUSTED_TYPES",
    "LoadedModel",
    "NativeLightGBM",
    "OnnxModel",
    "OnnxResult",
    "compile_onnx",
    "get_document",
    "get_profile",
    "get_version",
    "list_models",
    "list_versions",
    "load_bundle",
    "load_model",
    "load_onnx",
    "parse_ref",
    "register",
    "remove_alias",
    "save_bundle",
    "set_alias",
    "set_status",
    "signature_from_schema",
    "with_carried",
]
