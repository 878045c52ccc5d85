"""Estimators named by import path, and the search space the spec declares for them.

A path may name a class in a module of the project itself (`mymodels.MyEstimator` next to
shipyard.yaml): the project's directory is put first on the import path while that module is
imported, then taken off again, so it neither needs PYTHONPATH nor stays on the path after.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import optuna

from shipyard.core.errors import Invalid
from shipyard.core.spec import Candidate, ParamRange

# Quiet, single-threaded-per-trial defaults for libraries that print or oversubscribe.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "lightgbm.": {"verbosity": -1},
    "xgboost.": {"verbosity": 0},
}


@contextmanager
def importable_from(directory: Path | None) -> Iterator[None]:
    """`directory` first on `sys.path` inside the block, and off it again after.

    Modules imported inside stay imported (`sys.modules`), as any import does; the path entry
    does not outlive the block, so nothing else in the process starts finding the project's
    files by accident.
    """
    if directory is None:
        yield
        return
    entry = str(Path(directory).resolve())
    if entry in sys.path:
        yield
        return
    sys.path.insert(0, entry)
    importlib.invalidate_caches()  # a module file written since the last import is seen
    try:
        yield
    finally:
        with suppress(ValueError):  # the block removed it itself
            sys.path.remove(entry)


def import_estimator(path: str, *, project_dir: Path | None = None) -> type:
    """The class at `path` (e.g. sklearn.linear_model.LogisticRegression), checked to be an
    estimator (has `fit`, and `get_params` or an inspectable constructor).

    `project_dir` (the directory of shipyard.yaml) is searched first, so a module of the
    project imports without PYTHONPATH.
    """
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise Invalid(
            f"estimator {path!r} is not an import path; write e.g. "
            "sklearn.linear_model.LogisticRegression."
        )
    try:
        with importable_from(project_dir):
            module = importlib.import_module(module_name)
    except ImportError as exc:
        # A missing top-level module may be meant as a file of the project: say where we looked.
        missing = getattr(exc, "name", None)
        where = (
            f" (looked for {missing}.py in the project directory {project_dir} and in the "
            "installed packages)"
            if project_dir and missing and "." not in missing
            else ""
        )
        raise Invalid(
            f"estimator {path!r} does not import: {exc}{where}. Check the spelling, or install "
            "the package that provides it."
        ) from exc
    cls = getattr(module, attr, None)
    if cls is None:
        close = [n for n in dir(module) if n.lower() == attr.lower()]
        hint = (
            f" Did you mean {module_name}.{close[0]}?"
            if close
            else " Check the class name and the module it is in."
        )
        raise Invalid(f"estimator {path!r} does not import: {module_name} has no {attr!r}.{hint}")
    if not inspect.isclass(cls) or not hasattr(cls, "fit"):
        raise Invalid(
            f"{path!r} is not an estimator class with a fit() method; name a scikit-learn "
            "compatible estimator, e.g. sklearn.linear_model.LogisticRegression."
        )
    return cls


def accepted_params(cls: type) -> set[str]:
    try:
        return set(cls().get_params(deep=False))
    except Exception:
        sig = inspect.signature(cls)
        return {n for n in sig.parameters if n != "self"}


def check_candidate(
    candidate: Candidate, *, task: str | None = None, project_dir: Path | None = None
) -> type:
    cls = import_estimator(candidate.estimator, project_dir=project_dir)
    if task == "clustering" and not hasattr(cls, "predict"):
        # AgglomerativeClustering, DBSCAN, OPTICS, SpectralClustering only label the rows they
        # were fitted on: a served model must assign new rows to a cluster.
        raise Invalid(
            f"estimator {candidate.estimator} has no predict(): it labels only the rows it was "
            "fitted on, so it cannot assign new rows to a cluster when served. Use a clusterer "
            "that predicts, e.g. sklearn.cluster.KMeans, sklearn.cluster.MiniBatchKMeans, "
            "sklearn.cluster.Birch or sklearn.mixture.GaussianMixture."
        )
    accepted = accepted_params(cls)
    unknown = sorted(set(candidate.params) - accepted)
    if unknown:
        raise Invalid(
            f"estimator {candidate.estimator} does not accept parameter(s) {unknown}; it accepts: "
            f"{', '.join(sorted(accepted))}."
        )
    for name, space in candidate.params.items():
        if isinstance(space, ParamRange) and not space.low < space.high:
            raise Invalid(
                f"{candidate.estimator} parameter {name!r}: low ({space.low}) must be below "
                f"high ({space.high})."
            )
        if isinstance(space, ParamRange) and space.log and space.low <= 0:
            raise Invalid(
                f"{candidate.estimator} parameter {name!r}: a log range needs low > 0, got "
                f"{space.low}; raise low or drop log: true."
            )
        if isinstance(space, list) and not space:
            raise Invalid(
                f"{candidate.estimator} parameter {name!r}: the list of choices is empty; "
                "list at least one value or leave the parameter out."
            )
    return cls


def suggest(trial: optuna.Trial, candidates: list[Candidate]) -> tuple[Candidate, dict[str, Any]]:
    """Pick a candidate and its parameters for one trial (conditional search space)."""
    if len(candidates) == 1:
        candidate = candidates[0]
    else:
        index = trial.suggest_categorical("candidate", list(range(len(candidates))))
        candidate = candidates[int(index)]
    short = candidate.estimator.rsplit(".", 1)[-1]
    params: dict[str, Any] = {}
    for name, space in candidate.params.items():
        key = f"{short}.{name}"
        if isinstance(space, ParamRange):
            integral = (
                space.low.is_integer()
                and space.high.is_integer()
                and not space.log
                and (space.step is None or float(space.step).is_integer())
            )
            if integral:
                params[name] = trial.suggest_int(
                    key, int(space.low), int(space.high), step=int(space.step or 1)
                )
            else:
                params[name] = trial.suggest_float(
                    key, space.low, space.high, log=space.log, step=space.step
                )
        elif isinstance(space, list):
            params[name] = space[trial.suggest_categorical(key, list(range(len(space))))]
        else:
            params[name] = space
    return candidate, params


def make_estimator(
    path: str, params: dict[str, Any], seed: int, *, project_dir: Path | None = None
) -> Any:
    cls = import_estimator(path, project_dir=project_dir)
    accepted = accepted_params(cls)
    # The defaults are known keyword arguments of those libraries (LightGBM takes them through
    # **kwargs, so they are not in get_params()); the spec's own params win over them.
    full = {
        k: v for prefix, d in _DEFAULTS.items() if path.startswith(prefix) for k, v in d.items()
    }
    if "random_state" in accepted:
        full["random_state"] = seed
    full.update(params)
    return cls(**full)
