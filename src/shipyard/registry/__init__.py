"""Registry: signed model bundles, versions, aliases, statuses and loading (DESIGN.md section 3).

>>> v = register(ws, "credit-risk", pipeline, task="classification", signature=sig)
>>> set_alias(ws, v.ref, "champion")
>>> load_model(ws, "models:/credit-risk@champion").predict(frame)
"""

from shipyard.registry.bundle import TRUSTED_TYPES, LoadedModel, load_bundle, save_bundle
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
from shipyard.registry.native import NativeLightGBM
from shipyard.registry.onnx import OnnxModel, OnnxResult, compile_onnx, load_onnx
from shipyard.registry.signature import signature_from_schema

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
]
