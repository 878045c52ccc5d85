"""Fast prediction: a trained pipeline compiled to NumPy, then the estimator called directly.

The pipelines `shipyard.train` builds are one `ColumnTransformer` (median-imputed, scaled
numbers; constant-imputed, one-hot categories) and one estimator. Calling them through
scikit-learn costs a DataFrame and a millisecond of input checks per request (DESIGN.md,
serve/), so `compile_predictor` reads the fitted constants out of the preprocessing instead:

    numbers      X = (where(isnan(x), fill, x) - mean) / scale        one block, in place
    categories   one dict look-up per value → the column of its one-hot block
                 (unknown or infrequent: the infrequent column where the encoder has one,
                 else none, as `handle_unknown="infrequent_if_exist"` does)

and hands the matrix to the estimator: a registry LightGBM model (`NativeLightGBM`) through
`booster_.predict(X, num_threads=threads)`, a HistGradientBoosting model through its own trees
compiled to NumPy (`shipyard.serve.hgb.Forest`; its `predict_proba` costs a millisecond a call
whatever the batch), any other scikit-learn estimator through `predict_proba`/`predict` on the
ndarray with its native thread pools (OpenMP, BLAS) limited to `threads` for the call. Before a
compiled predictor is used, it is checked against the pipeline itself on probe rows that cover
every category, a missing value in every column and an unknown category, as one batch and some
of them one row at a time: any difference and the predictor falls back.

Any other pipeline falls back to building a DataFrame and calling the pipeline: correct,
slower. `Predictor.fast` says which, `Predictor.reason` why. A compiled predictor also keeps
its final `estimator` and the matrix's `layout` (which request column each matrix column came
from), which `shipyard.serve.explain` needs to put SHAP values back on the request's columns.

    >>> predictor = compile_predictor(model)
    >>> predictor.fast, predictor.reason
    (True, 'compiled: 5 numeric, 1 categorical columns → 9 features; lightgbm booster')
    >>> output = predictor.predict(batch)     # batch from shipyard.serve.inputs.to_columns
    >>> output.labels, output.probabilities[:, 1], output.classes
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import ThreadpoolController

from shipyard.core.errors import Invalid
from shipyard.core.records import Signature
from shipyard.registry import LoadedModel, NativeLightGBM
from shipyard.serve.hgb import Forest, unsupported
from shipyard.serve.inputs import Batch

if TYPE_CHECKING:
    import pandas as pd

PROBE_TOLERANCE = 1e-9
"""Compiled and original outputs on the probe rows may differ by at most this (relative)."""
_UNKNOWN = "\x00shipyard: a category never seen in training\x00"


@dataclass(slots=True)  # not frozen: built per request (see `serve`, hot-path records)
class Output:
    """Predictions for a batch: `labels` (classes, or numbers for regression), and for a
    classifier with probabilities one column per class in `classes` order."""

    labels: np.ndarray
    probabilities: np.ndarray | None
    classes: list[str] | None


@dataclass(frozen=True, slots=True)
class Layout:
    """The compiled matrix's columns, as seen from the request's columns.

    `origins[j]` is the request column that matrix column j encodes: a number's own column, or
    the categorical column a one-hot column belongs to. `reference` is one fixed encoded row, a
    typical input built from the fitted preprocessing alone: every number at its training mean
    (0 once scaled; the training median, scaled, where the scaler does not centre; 0 where
    nothing was fitted) and every one-hot block spread evenly over its columns (the training
    frequencies of categories are not stored, so each counts the same).
    """

    origins: tuple[str, ...]
    reference: np.ndarray


class Predictor:
    """Predicts a `Batch`; built by `compile_predictor`.

    `fast` is True when the pipeline was compiled to NumPy, `reason` says how or why not,
    `flavor` is the registry flavor of the model it was built from. A compiled predictor has
    its final `estimator` and the matrix's `layout`; a fallback one has None for both.
    `holds_gil` is True where most of a call's time holds the interpreter lock, and False where
    a native library does most of it with the lock let go (ONNX Runtime): it tells the batcher
    what a thread would gain. At serving's batch sizes (1-64 rows) every compiled path holds
    it: the preprocessing is NumPy on small arrays, and LightGBM's C prediction (the lock let
    go) was 13-47% of a call for 1-64 rows with the benchmark's 100-tree model, the rest
    NumPy and LightGBM's Python wrapper.
    """

    __slots__ = (
        "_estimate",
        "_prep",
        "classes",
        "estimator",
        "fast",
        "flavor",
        "holds_gil",
        "layout",
        "reason",
        "threads",
    )

    def __init__(
        self,
        *,
        fast: bool,
        reason: str,
        classes: list[str] | None,
        threads: int | None,
        estimate: Callable[[Batch], Output],
        prep: _Prep | None = None,
        flavor: str = "unknown",
        estimator: Any = None,
        layout: Layout | None = None,
        holds_gil: bool = True,
    ) -> None:
        self.fast = fast
        self.holds_gil = holds_gil
        self.reason = reason
        self.classes = classes
        self.threads = threads
        self.flavor = flavor
        self.estimator = estimator
        self.layout = layout
        self._estimate = estimate
        self._prep = prep

    def predict(self, batch: Batch) -> Output:
        """Labels (and probabilities, for a classifier that gives them) for every row."""
        return self._estimate(batch)

    def transform(self, batch: Batch) -> np.ndarray:
        """The compiled preprocessing's matrix (what `pipeline[:-1].transform` returns)."""
        if self._prep is None:
            raise Invalid(
                f"this predictor has no compiled transform: it was {self.reason}. Use "
                "predict(), or LoadedModel.transform() on a DataFrame."
            )
        return self._prep.transform(batch)

    def __repr__(self) -> str:
        return f"Predictor(fast={self.fast}, reason={self.reason!r})"


def compile_predictor(
    model: LoadedModel,
    *,
    signature: Signature | None = None,
    threads: int | None = 1,
    verify: bool = True,
) -> Predictor:
    """A `Predictor` for `model`: compiled to NumPy when its pipeline is the trainer's shape.

    >>> predictor = compile_predictor(load_model(ws, "models:/credit-risk@champion"))
    >>> predictor.predict(to_columns(signature, payload)).probabilities

    `signature` (default `model.signature`) says which columns are booleans, which requests
    carry as "True"/"False" text. `threads` limits native thread pools during each prediction
    (None leaves them alone): one thread per worker is fastest when several workers share the
    cores (DESIGN.md). `verify` compares the compiled predictor with the pipeline on probe rows
    before using it.
    """
    if threads is not None and threads < 1:
        raise Invalid(f"threads must be a positive number or None, not {threads}.")
    signature = signature or model.signature
    inputs = signature.inputs if signature is not None else []
    bools = frozenset(c.name for c in inputs if c.dtype == "bool")
    limit = _ThreadLimit(threads)
    classes = _classes(model)
    fallback = _Fallback(model, bools, limit, classes)
    try:
        prep, final = _compile(model.pipeline)
        layout = prep.layout()
        head = _head(final, classes, limit, threads)
    except _NotCompilable as exc:
        return _fallback_predictor(fallback, classes, threads, str(exc))
    except Exception as exc:  # an object this code misreads must cost speed, not service
        why = f"reading its fitted steps failed: {type(exc).__name__}: {exc}"
        return _fallback_predictor(fallback, classes, threads, why)
    compiled = _Compiled(prep, head)
    if verify:
        problem = _verify(compiled, fallback, prep)
        if problem:
            return _fallback_predictor(fallback, classes, threads, problem)
    return Predictor(
        fast=True,
        reason=f"compiled: {prep.describe()}; {head.describe()}",
        classes=classes,
        threads=threads,
        estimate=compiled,
        prep=prep,
        flavor=model.flavor,
        estimator=final,
        layout=layout,
    )


def _fallback_predictor(
    fallback: _Fallback, classes: list[str] | None, threads: int | None, why: str
) -> Predictor:
    return Predictor(
        fast=False,
        reason=f"not compiled ({why}); the pipeline is called on a DataFrame",
        classes=classes,
        threads=threads,
        estimate=fallback,
        flavor=fallback.model.flavor,
    )


def _classes(model: LoadedModel) -> list[str] | None:
    if model.task != "classification":
        return None
    classes = model.classes_
    return None if classes is None else [str(c) for c in np.asarray(classes).tolist()]


# -- compiling the preprocessing ----------------------------------------------------------------


class _NotCompilable(Exception):
    """Why a pipeline is not of the shape this module compiles."""


@dataclass(frozen=True, slots=True)
class _Numeric:
    """Columns imputed then scaled, into `X[:, start:start + len(names)]`."""

    names: tuple[str, ...]
    start: int
    fill: np.ndarray | None
    mean: np.ndarray | None
    scale: np.ndarray | None


@dataclass(frozen=True, slots=True)
class _OneHot:
    """One categorical column: value → column of X (-1: no column set)."""

    name: str
    lookup: dict[Any, int]
    default: int


@dataclass(frozen=True, slots=True)
class _Prep:
    numeric: tuple[_Numeric, ...]
    onehot: tuple[_OneHot, ...]
    width: int
    inputs: tuple[str, ...]  # every column the ColumnTransformer was fitted on, in order

    def transform(self, batch: Batch) -> np.ndarray:
        n = batch.n
        columns = batch.columns
        try:
            X = np.empty((n, self.width)) if not self.onehot else np.zeros((n, self.width))
            for block in self.numeric:
                view = X[:, block.start : block.start + len(block.names)]
                # the request's own matrix of these columns (inputs.Block), or one gathered
                held = next((b.matrix for b in batch.blocks if b.names == block.names), None)
                if held is None:
                    held = np.array([columns[name] for name in block.names], np.float64)
                view[...] = held.T
                if block.fill is not None:
                    np.copyto(view, block.fill, where=np.isnan(view))
                if block.mean is not None:
                    view -= block.mean
                if block.scale is not None:
                    view /= block.scale
            if self.onehot:
                hits = np.array(
                    [
                        list(map(c.lookup.get, columns[c.name], repeat(c.default)))
                        for c in self.onehot
                    ],
                    dtype=np.intp,
                ).reshape(len(self.onehot), n)
                flat = hits + np.arange(0, n * self.width, self.width)
                X.reshape(-1)[flat[hits >= 0]] = 1.0
        except KeyError as exc:
            raise Invalid(
                f"the batch has no column {exc.args[0]!r}, which the model needs "
                f"({', '.join(self.inputs)}); build it with shipyard.serve.inputs.to_columns "
                "and the model's signature."
            ) from None
        return X

    def layout(self) -> Layout:
        origins = [""] * self.width
        reference = np.zeros(self.width)
        for block in self.numeric:
            end = block.start + len(block.names)
            origins[block.start : end] = block.names
            if block.mean is None and block.fill is not None:
                scale = 1.0 if block.scale is None else block.scale
                reference[block.start : end] = block.fill / scale
        for onehot in self.onehot:
            # Every category (and the infrequent group) has its column in the lookup.
            columns = sorted({c for c in onehot.lookup.values() if c >= 0})
            for column in columns:
                origins[column] = onehot.name
            reference[columns] = 1.0 / len(columns)
        if "" in origins:
            raise _NotCompilable("some of its encoded columns cannot be traced to an input column")
        return Layout(tuple(origins), reference)

    def describe(self) -> str:
        numbers = sum(len(b.names) for b in self.numeric)
        return f"{numbers} numeric, {len(self.onehot)} categorical columns → {self.width} features"


def _compile(pipeline: Any) -> tuple[_Prep, Any]:
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise _NotCompilable("the model is not a two-step Pipeline of preprocessing and model")
    ct, final = pipeline.steps[0][1], pipeline.steps[1][1]
    if not isinstance(ct, ColumnTransformer):
        raise _NotCompilable(f"its first step is a {type(ct).__name__}, not a ColumnTransformer")
    if hasattr(final, "feature_names_in_"):
        raise _NotCompilable("its estimator was fitted on named columns (a DataFrame)")
    numeric: list[_Numeric] = []
    onehot: list[_OneHot] = []
    used: list[str] = []
    start = 0
    for name, transformer, columns in ct.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        if not isinstance(columns, list | tuple | np.ndarray) or not all(
            isinstance(c, str) for c in columns
        ):
            raise _NotCompilable(f"transformer {name!r} selects columns by other than name")
        if len(columns) == 0:
            continue
        steps = list(transformer.steps) if isinstance(transformer, Pipeline) else [transformer]
        steps = [s[1] if isinstance(s, tuple) else s for s in steps]
        cols = tuple(str(c) for c in columns)
        if isinstance(steps[-1], OneHotEncoder):
            blocks, start = _onehot(name, steps, cols, start)
            onehot += blocks
        else:
            numeric.append(_numeric(name, steps, cols, start))
            start += len(cols)
        used += cols
    if start == 0:
        raise _NotCompilable("its ColumnTransformer produces no columns")
    inputs = ct.feature_names_in_ if hasattr(ct, "feature_names_in_") else used
    return _Prep(tuple(numeric), tuple(onehot), start, tuple(str(c) for c in inputs)), final


def _numeric(name: str, steps: list[Any], columns: tuple[str, ...], start: int) -> _Numeric:
    fill = mean = scale = None
    rest = list(steps)
    if rest and isinstance(rest[0], SimpleImputer):
        fill = _imputed(name, rest.pop(0), numeric=True)
    if rest and isinstance(rest[0], StandardScaler):
        scaler = rest.pop(0)
        if scaler.with_mean:
            mean = np.asarray(scaler.mean_, dtype=np.float64)
        if scaler.with_std:
            scale = np.asarray(scaler.scale_, dtype=np.float64)
    if rest:
        kinds = " + ".join(repr(s) if isinstance(s, str) else type(s).__name__ for s in steps)
        raise _NotCompilable(
            f"transformer {name!r} is {kinds}, not SimpleImputer + StandardScaler or "
            "SimpleImputer + OneHotEncoder"
        )
    return _Numeric(columns, start, fill, mean, scale)


def _imputed(name: str, imputer: SimpleImputer, *, numeric: bool) -> np.ndarray:
    missing = imputer.missing_values
    if not (isinstance(missing, float) and math.isnan(missing)) or imputer.add_indicator:
        raise _NotCompilable(f"transformer {name!r} imputes other than NaN, or adds indicators")
    statistics = np.asarray(imputer.statistics_)
    if numeric:
        statistics = statistics.astype(np.float64)
        if not np.isfinite(statistics).all():
            raise _NotCompilable(f"transformer {name!r} has a column empty in training")
    return statistics


def _onehot(
    name: str, steps: list[Any], columns: tuple[str, ...], start: int
) -> tuple[list[_OneHot], int]:
    """One block per column, and where the next transformer's columns start."""
    fill = None
    if len(steps) == 2 and isinstance(steps[0], SimpleImputer):
        fill = _imputed(name, steps[0], numeric=False)
    elif len(steps) != 1:
        raise _NotCompilable(f"transformer {name!r} has steps before its OneHotEncoder")
    encoder: OneHotEncoder = steps[-1]
    if encoder.drop is not None or encoder.sparse_output:
        raise _NotCompilable(f"transformer {name!r} drops a category or outputs sparse")
    if encoder.handle_unknown not in ("ignore", "infrequent_if_exist"):
        raise _NotCompilable(f"transformer {name!r} has handle_unknown={encoder.handle_unknown!r}")
    infrequent_all = getattr(encoder, "infrequent_categories_", [None] * len(columns))
    first = start
    blocks = []
    for j, column in enumerate(columns):
        categories = list(encoder.categories_[j])
        if not all(c is None or isinstance(c, str | bool | np.bool_) for c in categories):
            raise _NotCompilable(f"column {column!r} has categories that are not text")
        booleans = any(isinstance(c, bool | np.bool_) for c in categories)
        infrequent = infrequent_all[j]
        rare = set() if infrequent is None else set(infrequent.tolist())
        frequent = [c for c in categories if c not in rare]
        lookup: dict[Any, int] = {}
        for k, category in enumerate(frequent):
            lookup[category] = start + k
        rare_column = start + len(frequent) if rare else -1
        for category in rare:
            lookup[category] = rare_column
        for category in list(lookup):
            if isinstance(category, bool | np.bool_):  # requests carry booleans as text
                lookup[str(bool(category))] = lookup[category]
        default = rare_column if encoder.handle_unknown == "infrequent_if_exist" else -1
        # A missing value reaches the pipeline as NaN in a text column, which the imputer
        # fills, and as None in a boolean one (as pandas reads a boolean column with nulls),
        # which SimpleImputer leaves to the encoder.
        if booleans or fill is None:
            lookup[None] = lookup.get(None, default)
        else:
            lookup[None] = lookup.get(fill[j], default)
        blocks.append(_OneHot(column, lookup, default))
        start += len(frequent) + (1 if rare else 0)
    if start - first != len(encoder.get_feature_names_out()):
        raise _NotCompilable(f"transformer {name!r} has a one-hot layout this code does not know")
    return blocks, start


# -- calling the estimator ----------------------------------------------------------------------


class _ThreadLimit:
    """Native thread pools (OpenMP, BLAS) limited for the duration of a call, then restored.

    The libraries are found once (`ThreadpoolController()` scans the process, milliseconds);
    each call then only reads and, where it differs, sets each library's thread count. OpenMP's
    count belongs to the calling thread; BLAS's is process-wide, so predictions running at once
    on several threads may briefly see each other's setting (a speed matter, never a result).
    A worker that pins its pools once (as the micro-batcher's model thread does) pays only the
    reads.
    """

    __slots__ = ("controllers", "threads")

    def __init__(self, threads: int | None) -> None:
        self.threads = threads
        self.controllers = [] if threads is None else list(ThreadpoolController().lib_controllers)

    def call(self, fn: Callable[[Any], Any], X: Any) -> Any:
        threads = self.threads
        if threads is None:
            return fn(X)
        changed = []
        for controller in self.controllers:
            before = controller.get_num_threads()
            if before is not None and before != threads:
                controller.set_num_threads(threads)
                changed.append((controller, before))
        try:
            return fn(X)
        finally:
            for controller, before in changed:
                controller.set_num_threads(before)


class _Head:
    """The final estimator, called on the compiled matrix."""

    def __call__(self, X: np.ndarray) -> Output:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class _LightGBMHead(_Head):
    def __init__(self, model: NativeLightGBM, classes: list[str] | None, threads: int | None):
        self.booster = model.booster_
        self.values = np.asarray(model.classes) if model.classes is not None else None
        self.classes = classes
        self.kwargs: dict[str, Any] = {} if threads is None else {"num_threads": threads}

    def __call__(self, X: np.ndarray) -> Output:
        raw = np.asarray(self.booster.predict(X, **self.kwargs))
        if self.values is None:
            return Output(raw, None, None)
        probabilities = np.vstack((1.0 - raw, raw)).T if raw.ndim == 1 else raw
        return Output(self.values[np.argmax(probabilities, axis=1)], probabilities, self.classes)

    def describe(self) -> str:
        return "lightgbm booster"


class _SklearnHead(_Head):
    """`predict_proba`/`predict` of `target`: the estimator itself, or a stand-in that predicts
    as it does (`_ForestHead`). `note` says why a stand-in was not used."""

    def __init__(
        self,
        estimator: Any,
        classes: list[str] | None,
        limit: _ThreadLimit,
        *,
        target: Any = None,
        note: str = "",
    ):
        self.estimator = estimator
        self.target = estimator if target is None else target
        self.classes = classes
        self.limit = limit
        self.note = note
        self.values = getattr(estimator, "classes_", None)
        self.proba = classes is not None and hasattr(estimator, "predict_proba")

    def __call__(self, X: np.ndarray) -> Output:
        if self.proba:
            probabilities = np.asarray(self.limit.call(self.target.predict_proba, X))
            labels = np.asarray(self.values)[np.argmax(probabilities, axis=1)]
            return Output(labels, probabilities, self.classes)
        labels = np.asarray(self.limit.call(self.target.predict, X))
        return Output(labels, None, self.classes)

    def describe(self) -> str:
        method = "predict_proba" if self.proba else "predict"
        note = f" ({self.note})" if self.note else ""
        return f"{type(self.estimator).__name__}.{method} on the matrix{note}"


class _ForestHead(_SklearnHead):
    """A HistGradientBoosting model's trees compiled to NumPy: no native thread pool to limit."""

    def __init__(self, estimator: Any, classes: list[str] | None):
        self.forest = Forest(estimator)
        super().__init__(estimator, classes, _ThreadLimit(None), target=self.forest)

    def describe(self) -> str:
        name = type(self.estimator).__name__
        return f"{name} trees compiled to NumPy ({self.forest.describe()})"


def _head(final: Any, classes: list[str] | None, limit: _ThreadLimit, threads: int | None) -> _Head:
    if isinstance(final, NativeLightGBM):
        return _LightGBMHead(final, classes, threads)
    if not hasattr(final, "predict"):
        raise _NotCompilable(f"its final step {type(final).__name__} has no predict()")
    # By name: importing sklearn.ensemble to test the class adds 30 ms to every start-up.
    if type(final).__name__.startswith("HistGradientBoosting"):
        why = unsupported(final)
        if why is None:
            return _ForestHead(final, classes)
        return _SklearnHead(final, classes, limit, note=f"trees not compiled: {why}")
    return _SklearnHead(final, classes, limit)


@dataclass(frozen=True, slots=True)
class _Compiled:
    prep: _Prep
    head: _Head

    def __call__(self, batch: Batch) -> Output:
        return self.head(self.prep.transform(batch))


@dataclass(frozen=True, slots=True)
class _Fallback:
    """The pipeline itself, on a DataFrame of the batch's columns."""

    model: LoadedModel
    bools: frozenset[str]
    limit: _ThreadLimit
    classes: list[str] | None

    def frame(self, batch: Batch) -> pd.DataFrame:
        import pandas as pd  # only the fallback needs pandas

        columns = dict(batch.columns)
        for name, values in columns.items():
            if values.dtype == object:
                columns[name] = _booleans(values) if name in self.bools else _missing(values)
        return pd.DataFrame(columns)

    def __call__(self, batch: Batch) -> Output:
        frame = self.frame(batch)
        pipeline = self.model.pipeline
        if self.classes is not None and hasattr(pipeline, "predict_proba"):
            probabilities = np.asarray(self.limit.call(pipeline.predict_proba, frame))
            values = np.asarray(self.model.classes_)
            return Output(values[np.argmax(probabilities, axis=1)], probabilities, self.classes)
        labels = np.asarray(self.limit.call(pipeline.predict, frame))
        return Output(labels, None, self.classes)


def _missing(texts: np.ndarray) -> np.ndarray:
    """None as NaN, the missing value scikit-learn's imputers look for in text columns."""
    nulls = np.array([t is None for t in texts], dtype=bool)
    if not nulls.any():
        return texts
    out = texts.copy()
    out[nulls] = np.nan
    return out


def _booleans(texts: np.ndarray) -> np.ndarray:
    """Requests' "True"/"False" text back to the booleans the model was trained on."""
    values = {"True": True, "False": False}
    out = np.empty(len(texts), dtype=object)
    out[:] = [values.get(t, t) if t is not None else None for t in texts]
    return out


# -- checking a compiled predictor against the pipeline ------------------------------------------


def _verify(compiled: _Compiled, fallback: _Fallback, prep: _Prep) -> str | None:
    """None when the compiled predictor matches the pipeline on the probe rows, else why not."""
    batch = _probe(prep)
    try:
        expected_matrix = fallback.model.transform(fallback.frame(batch))
        expected = fallback(batch)
    except Exception as exc:  # the pipeline itself fails on the probe: trust neither path
        return f"the pipeline fails on probe rows ({type(exc).__name__}: {exc})"
    matrix = prep.transform(batch)
    expected_matrix = np.asarray(expected_matrix, dtype=np.float64)
    if matrix.shape != expected_matrix.shape or not np.allclose(
        matrix, expected_matrix, rtol=1e-12, atol=1e-12, equal_nan=True
    ):
        return "its compiled preprocessing differs from the pipeline on probe rows"
    # Some heads take another road for a single row (hgb.Forest does): check a few alone too.
    singles = sorted({*range(0, batch.n, max(1, batch.n // 8)), 1, batch.n - 1})
    for got, want in chain(
        [(compiled(batch), expected)],
        ((compiled(batch.take(slice(i, i + 1))), _row_output(expected, i)) for i in singles),
    ):
        if not _same(got.labels, want.labels) or (
            got.probabilities is not None
            and (
                want.probabilities is None
                or not np.allclose(
                    got.probabilities, want.probabilities, rtol=PROBE_TOLERANCE, atol=1e-12
                )
            )
        ):
            return "its compiled predictions differ from the pipeline's on probe rows"
    return None


def _row_output(output: Output, i: int) -> Output:
    probabilities = output.probabilities
    return Output(
        output.labels[i : i + 1],
        None if probabilities is None else probabilities[i : i + 1],
        output.classes,
    )


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return bool(np.allclose(a, b, rtol=PROBE_TOLERANCE, atol=1e-12, equal_nan=True))
    return bool(np.array_equal(a, b))


def probe_batch(predictor: Predictor) -> Batch:
    """The probe rows a compiled predictor was verified on (Invalid for a fallback one)."""
    if predictor._prep is None:
        raise Invalid(f"this predictor has no probe rows: it was {predictor.reason}.")
    return _probe(predictor._prep)


def _probe(prep: _Prep) -> Batch:
    """Rows that visit every category of every column, a missing value in every column, an
    unknown category, and numbers around each column's centre."""
    categories = [[k for k in block.lookup if isinstance(k, str)] for block in prep.onehot]
    n = max([len(c) for c in categories] + [1]) + 2
    columns: dict[str, np.ndarray] = {name: np.full(n, np.nan) for name in prep.inputs}
    for block in prep.numeric:
        for j, name in enumerate(block.names):
            centre = 0.0 if block.mean is None else float(block.mean[j])
            spread = 1.0 if block.scale is None else float(block.scale[j])
            values = centre + spread * np.linspace(-3.0, 3.0, n)
            values[1] = np.nan
            columns[name] = values
    for onehot, known in zip(prep.onehot, categories, strict=True):
        texts: list[str | None] = [known[i % len(known)] if known else _UNKNOWN for i in range(n)]
        texts[len(known)] = None
        texts[len(known) + 1] = _UNKNOWN
        columns[onehot.name] = np.array(texts, dtype=object)
    return Batch(n, columns)


__all__ = [
    "PROBE_TOLERANCE",
    "Layout",
    "Output",
    "Predictor",
    "compile_predictor",
    "probe_batch",
]
