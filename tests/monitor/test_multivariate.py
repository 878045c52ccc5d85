"""Joint drift by a domain classifier: what per-feature tests cannot see."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.core.errors import Invalid
from shipyard.core.spec import MonitorSpec, MultivariateSpec
from shipyard.monitor import domain_classifier, drift_between


def correlated(rows: int, seed: int, rho: float) -> pd.DataFrame:
    """x and y standard normal with correlation `rho`; noise and a category unrelated."""
    rng = np.random.default_rng(seed)
    x, z = rng.normal(size=(2, rows))
    return pd.DataFrame(
        {
            "x": x,
            "y": rho * x + np.sqrt(1 - rho**2) * z,
            "noise": rng.lognormal(size=rows),
            "segment": rng.choice(["retail", "business", "public"], rows),
        }
    )


def test_a_flipped_correlation_is_joint_drift_that_marginals_miss() -> None:
    reference, current = correlated(6_000, 1, rho=0.8), correlated(6_000, 2, rho=-0.8)
    report = drift_between(reference, current, seed=0)
    assert report.drifted_columns == []  # every marginal is unchanged
    assert not report.features_drifted
    assert report.drifted  # joint drift alone drifts the window
    joint = report.multivariate
    assert joint is not None
    [reason] = report.reasons
    assert reason.startswith("joint drift: a domain classifier tells current rows from reference")
    assert f"ROC-AUC {joint.auc:.3f} (threshold 0.75), mostly by " in reason
    assert "the per-feature tests alone would not call it drift" in reason
    assert joint is not None and joint.drifted
    assert joint.auc > 0.85 and joint.threshold == 0.75 and joint.rows == 5_000
    assert set(list(joint.top_features)[:2]) == {"x", "y"}
    assert joint.top_features["x"] + joint.top_features["y"] > 0.8
    assert sum(joint.top_features.values()) == pytest.approx(1.0)


def test_exchangeable_sides_give_an_auc_near_one_half() -> None:
    joint = domain_classifier(
        correlated(3_000, 3, rho=0.8), correlated(3_000, 4, rho=0.8), ["x", "y", "noise", "segment"]
    )
    assert 0.4 < joint.auc < 0.6 and not joint.drifted


def test_a_shifted_category_drives_the_separation() -> None:
    reference = correlated(2_000, 5, rho=0.0)
    current = correlated(2_000, 6, rho=0.0)
    current.loc[current.index[:1_200], "segment"] = "public"
    joint = domain_classifier(reference, current, ["x", "noise", "segment"], threshold=0.6)
    assert joint.drifted and next(iter(joint.top_features)) == "segment"


def test_the_result_is_seeded_and_sampled_to_the_rows_asked() -> None:
    reference, current = correlated(4_000, 7, rho=0.5), correlated(3_000, 8, rho=-0.5)
    first = domain_classifier(reference, current, ["x", "y"], rows=1_000, seed=11)
    again = domain_classifier(reference, current, ["x", "y"], rows=1_000, seed=11)
    assert first == again and first.rows == 1_000
    # Fewer rows on one side than asked: both sides use that many.
    assert domain_classifier(reference, current.head(700), ["x", "y"], rows=5_000).rows == 700


def test_the_spec_sets_rows_and_threshold_and_can_switch_it_off() -> None:
    reference, current = correlated(3_000, 9, rho=0.8), correlated(3_000, 10, rho=-0.8)
    spec = MonitorSpec(multivariate=MultivariateSpec(rows=500, threshold=0.99))
    joint = drift_between(reference, current, spec=spec).multivariate
    assert joint is not None and joint.rows == 500 and joint.threshold == 0.99
    assert not joint.drifted
    assert (
        drift_between(reference, current, spec=MonitorSpec(multivariate=None)).multivariate is None
    )


def test_bad_input_is_refused() -> None:
    reference = correlated(500, 1, rho=0.0)
    with pytest.raises(Invalid, match=r"current data has no column\(s\) \['y'\]"):
        domain_classifier(reference, reference.drop(columns="y"), ["x", "y"])
    with pytest.raises(Invalid, match=r"at least 50 rows per side; received 500 reference and 20"):
        domain_classifier(reference, reference.head(20), ["x"])
    with pytest.raises(Invalid, match="received no features"):
        domain_classifier(reference, reference, [])
