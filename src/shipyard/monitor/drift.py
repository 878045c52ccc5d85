"""Per-feature drift between a reference and a window of current data, and the window's verdict.

Every statistic is computed from the two sketches (`sketch.py`) on the reference's bins, so the
online loop and an offline `drift_between` give the same numbers.

Numeric columns: Wasserstein-1 distance divided by the reference's standard deviation
(`wasserstein`; estimated from the bins with values spread evenly inside each, and never below
the exact difference of the means), PSI, Kolmogorov-Smirnov (`ks`, with `ks_pvalue`) and
Welch's t-test on the means (`mean_pvalue`). Categorical columns:
Jensen-Shannon distance (`jensen_shannon`, base 2), PSI, and chi-square (`chi2`, `chi2_pvalue`)
with Cramér's V as its effect size (`cramers_v`, computed as if both sides had the same size,
so it does not depend on how much traffic a window had). Choosing `ks` or `chi2` as the test
decides on the KS statistic or on Cramér's V, both effect sizes.

Decision rule: a column drifts when its effect size reaches the threshold AND the significance
test for its type gives p < `ALPHA` (`scores["pvalue"]`: for numeric columns KS or Welch,
whichever is smaller, doubled; for categorical ones chi-square). In a large
window p is ~0 whenever the effect passes its threshold, so the effect size decides and a
million-row window does not flag trivial shifts; in a small window (a few hundred rows, where a
0.1-std Wasserstein distance arises by chance alone) the p-value holds noise back. The same
score is used at every window size, so a dashboard plots one comparable number over time.

Defaults (`DEFAULTS`): numeric `wasserstein` ≥ 0.1 (a tenth of a standard deviation of mean
shift); categorical `jensen_shannon` ≥ 0.1 (about a ten-point move of frequency between
categories). Overrides: `MonitorSpec.tests` per type, `MonitorSpec.columns` per column.

Missing values are judged on their own: `missing_drifted` when Cohen's h between the missing
rates is ≥ 0.1 and a two-proportion test gives p < `ALPHA`. The window drifts when the features
that drifted (in distribution or in missing rate) carry at least `MonitorSpec.drift_threshold`
of the model's importance (of the features, when no importance is given), or when a domain
classifier tells its rows from the reference's (joint drift, `judged`): a change in how the
columns move together drifts the window even when no single column moved. `reasons` says which,
in words that the CLI, the HTML report, the alerts and the retrain policies share.

The target (`label_column`) and the model's output (`prediction_column`) are judged with the
same tests but apart from the features: label drift and prediction drift inform, the features
and the joint test decide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.special import chdtrc, kolmogorov, stdtr

from shipyard.core.errors import Invalid, SpecError
from shipyard.core.records import DriftReport, FeatureDrift, MultivariateDrift
from shipyard.core.spec import DriftTestSpec, MonitorSpec
from shipyard.data.stats import jensen_shannon, psi
from shipyard.monitor.multivariate import domain_classifier
from shipyard.monitor.sketch import (
    CategoricalSketch,
    ColumnSketch,
    NumericSketch,
    WindowSketch,
    as_table,
    check_same_bins,
)

ALPHA = 0.01
SHOWN_COLUMNS = 8  # drifted columns named in a summary line
MISSING_H = 0.1
DEFAULTS = {
    "numeric": DriftTestSpec(test="wasserstein", threshold=0.1),
    "categorical": DriftTestSpec(test="jensen_shannon", threshold=0.1),
}
VALID_TESTS = {
    "numeric": ("wasserstein", "psi", "ks"),
    "categorical": ("jensen_shannon", "psi", "chi2"),
}
# The score each test decides on: chi-square decides on its effect size, never its statistic.
SCORE_OF = {name: name for name in ("wasserstein", "psi", "ks", "jensen_shannon")}
SCORE_OF["chi2"] = "cramers_v"


def compare(
    reference: WindowSketch,
    current: WindowSketch,
    *,
    spec: MonitorSpec | None = None,
    importance: Mapping[str, float] | None = None,
    prediction_column: str | None = None,
    label_column: str | None = None,
    reference_label: str = "reference",
    current_label: str = "current",
) -> DriftReport:
    """Drift of a window's sketch against the reference's, per feature and as a whole.

    >>> reference = WindowSketch.from_profile(profile)
    >>> window = reference.empty_like(); window.update(batch)
    >>> report = compare(reference, window, importance={"income": 0.7, "grade": 0.3})
    >>> report.drifted, report.drifted_columns
    (False, [])
    """
    spec = spec or MonitorSpec()
    check_same_bins(reference, current)
    tests = resolve_tests(reference, spec)
    for what, column in (("prediction", prediction_column), ("label", label_column)):
        if column is not None and column not in reference.features:
            raise Invalid(
                f"{what} column {column!r} is not in the sketches, which hold "
                f"{list(reference.features)}. Include it when building the reference."
            )
    base: dict[str, Any] = {
        "reference": reference_label,
        "current": current_label,
        "reference_rows": reference.rows,
        "current_rows": current.rows,
        "threshold": spec.drift_threshold,
        "ignored_columns": sorted(current.ignored),
    }
    for side, rows in (("current window", current.rows), ("reference", reference.rows)):
        if rows < spec.min_rows:
            unit = "row" if rows == 1 else "rows"
            return DriftReport(
                **base,
                note=f"not enough traffic to judge drift: the {side} has {rows:,} {unit}, fewer "
                f"than monitor.min_rows = {spec.min_rows}. Nothing was judged; wait for a "
                "fuller window or lower min_rows.",
            )
    apart = (prediction_column, label_column)
    names = [n for n in reference.features if n not in apart]
    weights = _importance_shares(importance, names)

    def judge(name: str) -> FeatureDrift:
        share = weights.get(name) if weights else None
        return feature_drift(
            name, reference.features[name], current.features[name], tests[name], share,
            reference.rows, current.rows,
        )  # fmt: skip

    features = [judge(n) for n in names]
    prediction = judge(prediction_column) if prediction_column is not None else None
    label = judge(label_column) if label_column is not None else None
    moved = [f for f in features if f.drifted or f.missing_drifted]
    if weights:
        share = sum(weights[f.column] for f in moved)
    else:
        share = len(moved) / len(features) if features else 0.0
    report = DriftReport(
        **base, features=features, prediction=prediction, label=label, drifted_share=share
    )
    return judged(report)


def judged(report: DriftReport, multivariate: MultivariateDrift | None = None) -> DriftReport:
    """`report` with its verdict (and the domain classifier's result, when given): drifted when
    the drifted features carry the threshold's share or the classifier tells the two sides
    apart; `reasons` says which, in words.

    >>> report = judged(compare(reference, window), domain_classifier(ref_df, cur_df, names))
    >>> report.drifted, report.reasons
    (True, ['joint drift: a domain classifier tells current rows from reference rows ...'])
    """
    if multivariate is not None:
        report = report.model_copy(update={"multivariate": multivariate})
    reasons = []
    if report.note is None:
        if report.features_drifted:
            reasons.append(features_summary(report))
        joint = report.multivariate
        if joint is not None and joint.drifted:
            reasons.append(joint_summary(joint, alone=not report.features_drifted))
    return report.model_copy(update={"drifted": bool(reasons), "reasons": reasons})


def features_summary(report: DriftReport) -> str:
    """How many features drifted and what share that is: of the model's importance when the
    report weighs by it, else of the features (said so, since no model is involved)."""
    moved = [f for f in report.features if f.drifted or f.missing_drifted]
    head = f"{len(moved)} of {len(report.features)} features drifted"
    limit = "" if report.threshold is None else f"threshold {report.threshold:.0%}"
    if report.by_importance:
        text = f"{head}, carrying {report.drifted_share:.0%} of the model's importance"
        text += f" ({limit})" if limit else ""
    else:
        text = f"{head} ({report.drifted_share:.0%} of the features"
        text += f"; {limit})" if limit else ")"
    if moved:
        names = ", ".join(f.column for f in moved[:SHOWN_COLUMNS])
        more = len(moved) - SHOWN_COLUMNS
        text += f": {names}" + (f" and {more} more" if more > 0 else "")
    return text


def joint_summary(joint: MultivariateDrift, *, alone: bool = False) -> str:
    """The domain classifier's finding in words, with the features behind it when it drifted."""
    if not joint.drifted:
        return (
            f"no joint drift: a domain classifier tells current rows from reference rows no "
            f"better than ROC-AUC {joint.auc:.3f} (0.5 is chance; drift from {joint.threshold:g})"
        )
    text = (
        f"joint drift: a domain classifier tells current rows from reference rows with ROC-AUC "
        f"{joint.auc:.3f} (threshold {joint.threshold:g})"
    )
    top = [(name, share) for name, share in joint.top_features.items() if share >= 0.005][:4]
    if top:
        text += ", mostly by " + ", ".join(f"{name} ({share:.0%})" for name, share in top)
    if alone:
        text += "; the per-feature tests alone would not call it drift"
    return text


def drift_between(
    reference: pa.Table | pd.DataFrame,
    current: pa.Table | pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    spec: MonitorSpec | None = None,
    importance: Mapping[str, float] | None = None,
    multivariate: bool = True,
    prediction_column: str | None = None,
    label_column: str | None = None,
    excluded: Mapping[str, str] | None = None,
    reference_label: str = "reference",
    current_label: str = "current",
    seed: int = 0,
) -> DriftReport:
    """Drift between any two data sets, offline: per feature and, unless `multivariate=False`
    or `spec.multivariate` is None, by a domain classifier. `label_column` (the target) is
    judged apart, as label drift; `excluded` (column → why) records what was left out.

    >>> report = drift_between(train_df, last_week_df, importance=model_importance)
    >>> [(f.column, f.test, round(f.score, 3)) for f in report.features if f.drifted]
    [('income', 'wasserstein', 0.52)]
    """
    spec = spec or MonitorSpec()
    ref, cur = as_table(reference, "reference"), as_table(current, "current")
    names = list(columns) if columns is not None else ref.column_names
    if label_column is not None and label_column not in names:
        names.append(label_column)
    for side, table in (("reference", ref), ("current", cur)):
        absent = [n for n in names if n not in table.column_names]
        if absent:
            raise Invalid(
                f"the {side} data has no column(s) {absent}; expected every compared column "
                f"{names}. Add them, or pass columns= to compare fewer."
            )
    reference_sketch = WindowSketch.reference_from(ref, names, seed=seed)
    window = reference_sketch.empty_like()
    resolve_tests(reference_sketch, spec)  # a bad spec fails before any counting
    if cur.num_rows:
        window.update({n: cur.column(n) for n in names}, rows=cur.num_rows)
    window.ignored = {n for n in cur.column_names if n not in names}
    report = compare(
        reference_sketch,
        window,
        spec=spec,
        importance=importance,
        prediction_column=prediction_column,
        label_column=label_column,
        reference_label=reference_label,
        current_label=current_label,
    )
    if excluded:
        report = report.model_copy(update={"excluded": dict(excluded)})
    if not multivariate or spec.multivariate is None or report.note is not None:
        return report
    features = [f.column for f in report.features]
    if not features:
        return report
    joint: MultivariateDrift = domain_classifier(
        ref,
        cur,
        features,
        rows=spec.multivariate.rows,
        threshold=spec.multivariate.threshold,
        seed=seed,
    )
    return judged(report, joint)


def pvalue_text(value: float | None) -> str:
    """A p-value as people read it: three decimals, or `<0.001`; blank when not computed."""
    if value is None or not math.isfinite(value):
        return ""
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def percent_text(value: float | None) -> str:
    """A share (importance, drifted share) as a whole percentage; `<1%` for a sliver, so a
    feature that counts a little does not read as one that counts nothing."""
    if value is None:
        return ""
    return "<1%" if 0 < value < 0.005 else f"{value:.0%}"


def change_text(registered: float, current: float, drop: float) -> str:
    """A metric's move since registration, signed as the metric moved, and whether that is
    worse (`drop` > 0 means worse, whichever way the metric points)."""
    direction = "worse" if drop > 0 else "better" if drop < 0 else "unchanged"
    return f"{current - registered:+.4f}, {direction}"


# -- which test, which threshold ------------------------------------------------------------------


def resolve_tests(reference: WindowSketch, spec: MonitorSpec) -> dict[str, DriftTestSpec]:
    """The test and threshold for every column: column override, else type override, else the
    default. SpecError for an unknown column or a test that does not fit the column's type."""
    unknown = [n for n in spec.columns if n not in reference.features]
    if unknown:
        raise SpecError(
            f"monitor.columns.{unknown[0]}: no monitored column is called {unknown[0]!r}; "
            f"expected one of {list(reference.features)}. Fix the name or remove the override."
        )
    for kind in ("numeric", "categorical"):
        chosen: DriftTestSpec | None = getattr(spec.tests, kind)
        if chosen is not None and chosen.test not in VALID_TESTS[kind]:
            raise SpecError(_wrong_test(f"monitor.tests.{kind}.test", chosen.test, kind))
    tests = {}
    for name, sketch in reference.features.items():
        kind = sketch.kind
        chosen = spec.columns.get(name) or getattr(spec.tests, kind) or DEFAULTS[kind]
        if chosen.test not in VALID_TESTS[kind]:
            where = f"monitor.columns.{name}.test"
            raise SpecError(_wrong_test(where, chosen.test, kind, name))
        tests[name] = chosen
    return tests


def _wrong_test(where: str, test: str, kind: str, column: str | None = None) -> str:
    what = f"column {column!r} is {kind}" if column else f"these columns are {kind}"
    return (
        f"{where}: received {test!r}, but {what}; expected one of {', '.join(VALID_TESTS[kind])}."
    )


def _importance_shares(
    importance: Mapping[str, float] | None, names: Sequence[str]
) -> dict[str, float] | None:
    if not importance:
        return None
    raw = {n: float(importance.get(n, 0.0)) for n in names}
    raw = {n: v if v > 0 else 0.0 for n, v in raw.items()}  # negative or NaN: no weight
    total = sum(raw.values())
    return {n: v / total for n, v in raw.items()} if total > 0 else None


# -- one feature ----------------------------------------------------------------------------------


def feature_drift(
    name: str,
    ref: ColumnSketch,
    cur: ColumnSketch,
    test: DriftTestSpec,
    importance: float | None,
    reference_rows: int,
    current_rows: int,
) -> FeatureDrift:
    """Every statistic for one column, and the decision by `test`."""
    if isinstance(ref, NumericSketch) and isinstance(cur, NumericSketch):
        bins, ref_counts, cur_counts = _numeric_bins(ref, cur)
        scores = numeric_scores(ref, cur)
        ref_present, cur_present = int(ref.counts.sum()), int(cur.counts.sum())
        new: dict[str, int] = {}
    elif isinstance(ref, CategoricalSketch) and isinstance(cur, CategoricalSketch):
        bins, ref_counts, cur_counts = _categorical_bins(ref, cur)
        scores = categorical_scores(ref_counts, cur_counts)
        ref_present, cur_present = ref.present, cur.present
        new = dict(cur.new) if ref.complete else {}
        if ref.complete and cur.new_untracked:
            scores["new_untracked"] = float(cur.new_untracked)
    else:
        raise AssertionError("check_same_bins lets only matching kinds through")
    missing = _missing_scores(ref.missing, ref_present, cur.missing, cur_present)
    scores.update(missing)
    comparable = ref_present > 0 and cur_present > 0
    score = scores[SCORE_OF[test.test]] if comparable else 0.0
    significant = scores["pvalue"] < ALPHA
    return FeatureDrift(
        column=name,
        kind=ref.kind,  # type: ignore[arg-type]
        test=test.test,
        score=score,
        threshold=test.threshold,
        drifted=comparable and score >= test.threshold and significant,
        scores=scores,
        reference_rows=reference_rows,
        current_rows=current_rows,
        missing_reference=missing["missing_reference"],
        missing_current=missing["missing_current"],
        missing_drifted=missing["missing_h"] >= MISSING_H and missing["missing_pvalue"] < ALPHA,
        new_categories=new,
        importance=importance,
        bins=bins,
        reference_share=_shares(ref_counts),
        current_share=_shares(cur_counts),
    )


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return (counts / total).tolist() if total > 0 else [0.0] * len(counts)


def edge_texts(edges: Sequence[float] | np.ndarray) -> list[str]:
    """Bin edges as short numbers: the fewest decimals that put each edge within an eighth of
    the narrowest bin (0.05, 0.17, … for probabilities; 12, 15.5, … for tenures), trailing
    zeros dropped; significant digits for very large or very small values."""
    values = [float(x) for x in edges]
    finite = [x for x in values if math.isfinite(x)]
    gaps = [b - a for a, b in pairwise(sorted(finite)) if b > a]
    gap = min(gaps) if gaps else max((abs(x) for x in finite), default=1.0) or 1.0
    scale = max((abs(x) for x in finite), default=0.0)
    decimals = next((d for d in range(7) if 10.0**-d <= gap / 4), None)
    if scale < 1e6 and decimals is not None:
        texts = [f"{x:.{decimals}f}" for x in values]
        if decimals:
            texts = [t.rstrip("0").rstrip(".") if "." in t else t for t in texts]
        return ["0" if t in ("-0", "") else t for t in texts]
    for digits in range(2, 10):
        texts = [f"{x:.{digits}g}" for x in values]
        if all(a != b for a, b in pairwise(texts)):
            return texts
    return [repr(x) for x in values]


def _numeric_bins(ref: NumericSketch, cur: NumericSketch) -> tuple[list[str], Any, Any]:
    """Bin labels and counts for plots; the underflow and overflow bins only when not empty."""
    e = ref.edges
    if not len(e):
        return ["(all)"], ref.counts.astype(float), cur.counts.astype(float)
    t = edge_texts(e)
    labels = [f"< {t[0]}"]
    labels += [f"[{a}, {b})" for a, b in pairwise(t[:-1])]
    labels += [f"[{t[-2]}, {t[-1]}]", f"> {t[-1]}"]
    keep = np.ones(len(labels), bool)
    keep[[0, -1]] = (ref.counts + cur.counts)[[0, -1]] > 0
    rc, cc = ref.counts[keep].astype(float), cur.counts[keep].astype(float)
    return [lab for lab, k in zip(labels, keep, strict=True) if k], rc, cc


def _categorical_bins(ref: CategoricalSketch, cur: CategoricalSketch) -> tuple[list[str], Any, Any]:
    """The reference's categories, then `(other)`: the reference's tail and every new value."""
    ref_other = ref.other + sum(ref.new.values()) + ref.new_untracked
    cur_other = cur.other + sum(cur.new.values()) + cur.new_untracked
    bins = [*ref.categories]
    rc, cc = ref.counts.astype(float), cur.counts.astype(float)
    if ref_other or cur_other:
        bins.append("(other)")
        rc, cc = np.append(rc, ref_other), np.append(cc, cur_other)
    return bins, rc, cc


# -- statistics -----------------------------------------------------------------------------------


def numeric_scores(ref: NumericSketch, cur: NumericSketch) -> dict[str, float]:
    """Wasserstein (÷ reference std), KS with p-value, and PSI, from two histograms."""
    rc, cc = ref.counts.astype(np.float64), cur.counts.astype(np.float64)
    nr, nc = rc.sum(), cc.sum()
    if not nr or not nc:
        return {"wasserstein": 0.0, "ks": 0.0, "ks_pvalue": 1.0, "psi": 0.0, "pvalue": 1.0}
    cdf_r = np.concatenate([[0.0], np.cumsum(rc) / nr])
    cdf_c = np.concatenate([[0.0], np.cumsum(cc) / nc])
    gap = cdf_r - cdf_c
    ends = (ref.lo, cur.lo, ref.hi, cur.hi, *ref.edges[:1], *ref.edges[-1:])
    finite = [x for x in ends if math.isfinite(x)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 0.0)
    bounds = np.concatenate([[lo], np.clip(ref.edges, lo, hi), [hi]])
    # W1 is never below the exact difference of means, which bins cannot blur (half a unit of
    # shift on integer counts leaves every value in its bin).
    mean_gap = abs(ref.mean - cur.mean) if ref.count and cur.count else 0.0
    distance = max(_area_between(gap, np.diff(bounds)), mean_gap)
    ks = float(np.abs(gap).max())
    ks_pvalue, mean_pvalue = _ks_pvalue(ks, nr, nc), _welch_pvalue(ref, cur)
    keep = np.ones(len(rc), bool)  # empty underflow/overflow bins say nothing to PSI
    keep[[0, -1]] = (rc + cc)[[0, -1]] > 0
    return {
        "wasserstein": distance / _scale(ref, cur),
        "wasserstein_raw": distance,
        "ks": ks,
        "ks_pvalue": ks_pvalue,
        "mean_pvalue": mean_pvalue,
        # KS sees shape, Welch sees a mean shift the bins blur: either, Bonferroni-corrected.
        "pvalue": min(1.0, 2 * min(ks_pvalue, mean_pvalue)),
        "psi": psi(rc[keep], cc[keep]),
        "mean_reference": ref.mean,
        "mean_current": cur.mean,
        "std_reference": ref.std,
        "std_current": cur.std,
    }


def _area_between(gap: np.ndarray, widths: np.ndarray) -> float:
    """∫|F_ref - F_cur| with both CDFs linear inside each bin (values spread evenly in a bin)."""
    a, b = gap[:-1], gap[1:]
    same_sign = a * b >= 0
    total = np.abs(a) + np.abs(b)
    crossing = np.divide(a * a + b * b, 2 * total, out=np.zeros_like(total), where=total > 0)
    area = np.where(same_sign, total / 2, crossing) * widths
    return float(area.sum())


def _scale(ref: NumericSketch, cur: NumericSketch) -> float:
    """The reference's std; for a constant reference, the window's, else the raw distance
    (which then reads in the column's own units)."""
    for std in (ref.std, cur.std):
        if std > 0 and math.isfinite(std):
            return std
    return 1.0


def _welch_pvalue(ref: NumericSketch, cur: NumericSketch) -> float:
    """Welch's t-test on the two means, from the moments."""
    if ref.count < 2 or cur.count < 2:
        return 1.0
    vr, vc = ref.std**2 / ref.count, cur.std**2 / cur.count
    gap = abs(ref.mean - cur.mean)
    if vr + vc <= 0:
        return 0.0 if gap > 0 else 1.0
    df = (vr + vc) ** 2 / (vr**2 / (ref.count - 1) + vc**2 / (cur.count - 1))
    return float(2 * stdtr(df, -gap / math.sqrt(vr + vc)))


def _ks_pvalue(d: float, n: float, m: float) -> float:
    """Asymptotic two-sample KS p-value with Stephens' small-sample correction. On binned data
    the statistic can only be smaller than on the raw values, so the p-value is conservative."""
    if d <= 0:
        return 1.0
    ne = n * m / (n + m)
    root = math.sqrt(ne)
    return float(min(1.0, kolmogorov((root + 0.12 + 0.11 / root) * d)))


def categorical_scores(rc: np.ndarray, cc: np.ndarray) -> dict[str, float]:
    """Jensen-Shannon distance, PSI, chi-square (statistic, p-value) and Cramér's V."""
    nr, nc = rc.sum(), cc.sum()
    if not nr or not nc:
        zero = ("jensen_shannon", "psi", "chi2", "cramers_v")
        return {**dict.fromkeys(zero, 0.0), "chi2_pvalue": 1.0, "pvalue": 1.0}
    used = (rc + cc) > 0
    rc, cc = rc[used], cc[used]
    total = rc + cc
    expected_r, expected_c = total * nr / (nr + nc), total * nc / (nr + nc)
    chi2 = float(
        (((rc - expected_r) ** 2) / expected_r + ((cc - expected_c) ** 2) / expected_c).sum()
    )
    dof = len(rc) - 1
    p, q = rc / nr, cc / nc
    # Cramér's V of a 2×k table with equal sides: independent of the windows' sizes.
    cramers_v = math.sqrt(float(((p - q) ** 2 / (p + q)).sum()) / 2)
    pvalue = float(chdtrc(dof, chi2)) if dof > 0 else 1.0
    return {
        "jensen_shannon": jensen_shannon(rc, cc),
        "psi": psi(rc, cc),
        "chi2": chi2,
        "chi2_pvalue": pvalue,
        "cramers_v": cramers_v,
        "pvalue": pvalue,
    }


def _missing_scores(
    ref_missing: int, ref_present: int, cur_missing: int, cur_present: int
) -> dict[str, float]:
    """Missing rates, Cohen's h between them, and a two-proportion z-test p-value."""
    nr, nc = ref_missing + ref_present, cur_missing + cur_present
    r = ref_missing / nr if nr else 0.0
    c = cur_missing / nc if nc else 0.0
    h = abs(2 * math.asin(math.sqrt(c)) - 2 * math.asin(math.sqrt(r)))
    pooled = (ref_missing + cur_missing) / (nr + nc) if nr + nc else 0.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / nr + 1 / nc)) if nr and nc else 0.0
    pvalue = math.erfc(abs(c - r) / se / math.sqrt(2)) if se > 0 else 1.0
    return {"missing_reference": r, "missing_current": c, "missing_h": h, "missing_pvalue": pvalue}
