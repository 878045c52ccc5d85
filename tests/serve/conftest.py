"""Fitted pipelines for the serve suite, fitted once per session."""

from __future__ import annotations

import pytest
from serve_cases import FEATURES, NUMERIC, fit
from sklearn.pipeline import Pipeline


@pytest.fixture(scope="session")
def pipelines() -> dict[str, Pipeline]:
    """Two compatible models (`a`, `b`) and one that takes other columns (`narrow`)."""
    return {
        "a": fit(1.0, features=FEATURES),
        "b": fit(0.01, features=FEATURES, seed=1),
        "narrow": fit(1.0, features=NUMERIC),
    }
