"""Gates: the checks a model must pass before it may be deployed (the spec's ``gates:`` list).

Three kinds, one per line of the spec::

    f1 >= 0.60                                  a metric of the held-out evaluation
    recall[sex] >= 0.50                         the same metric on the worst slice of a column
    demographic_parity_difference(sex) <= 0.1   a fairness measure over a sensitive column
    {tests: checks/predictions.py}              the user's own prediction tests

    >>> results = check_gates(spec.gates, report, model=model, sample=X_test.head(200),
    ...                       target=y_test.head(200), base_dir=spec.base_dir, sensitive=["sex"])
    >>> [(g.gate, g.passed) for g in results]
    [('f1 >= 0.60', True), ('tests:checks/predictions.py::test_positive_income', True)]

A test file is ordinary Python: each function named ``test_*`` is called with the arguments it
names among ``model``, ``data`` (the sample DataFrame), ``X`` (the same) and ``y``; it passes if
it returns without raising. It runs with the permissions of the Shipyard process, like pytest.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import math
import operator
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pandas as pd

from shipyard.core.errors import Invalid, SpecError
from shipyard.core.records import GateResult
from shipyard.core.spec import Gate, TestsGate
from shipyard.evaluate.metrics import check_metric, greater_is_better, metric_names
from shipyard.evaluate.report import EvaluationReport

FAIRNESS = ("demographic_parity_difference", "equalized_odds_difference")
TEST_ARGUMENTS = ("model", "data", "X", "y")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_GATE_RE = re.compile(
    rf"""\A\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*
    (?:\(\s*(?P<call>[^()]*?)\s*\)|\[\s*(?P<index>[^\[\]]*?)\s*\])?\s*
    (?P<op>>=|<=|==|!=|=>|=<|=|>|<)\s*
    (?P<number>{_NUMBER})\s*%?\s*\Z""",
    re.VERBOSE | re.ASCII,
)
_EXAMPLES = (
    "for example 'f1 >= 0.60', 'recall[sex] >= 0.5' or 'demographic_parity_difference(sex) <= 0.1'"
)


@dataclass(frozen=True)
class ParsedGate:
    """One metric or fairness gate: ``name[column] op threshold`` or ``name(column) op ...``."""

    text: str
    kind: Literal["metric", "fairness"]
    name: str
    op: str
    threshold: float
    column: str | None = None

    def holds(self, value: float) -> bool:
        return not math.isnan(value) and _OPS[self.op](value, self.threshold)


def parse_gate(text: str, task: str, *, sensitive: Sequence[str] | None = None) -> ParsedGate:
    """Parse one metric or fairness gate, or raise `SpecError` saying what is wrong.

    With ``sensitive``, a column in a slice or fairness gate must be one of them.

    >>> parse_gate("f1 >= 0.6", "classification")
    ParsedGate(text='f1 >= 0.6', kind='metric', name='f1', op='>=', threshold=0.6, column=None)
    """
    if not isinstance(text, str):
        raise SpecError(
            f"gate {text!r} is a {type(text).__name__}; write it as text, {_EXAMPLES}, "
            "or as {tests: path/to/checks.py}."
        )
    if not text.strip():
        raise SpecError(f"gate {text!r} is empty; write a comparison, {_EXAMPLES}.")
    match = _GATE_RE.match(text)
    if not match:
        raise SpecError(
            f"gate {text!r} is not of the form METRIC OP NUMBER, METRIC[column] OP NUMBER or "
            f"FAIRNESS(column) OP NUMBER with OP one of >=, <=, >, <; {_EXAMPLES}."
        )
    name, op, call, index = match["name"], match["op"], match["call"], match["index"]
    if op not in _OPS:
        raise SpecError(
            f"gate {text!r}: operator {op!r} is not supported; use one of >=, <=, >, < "
            f"({_EXAMPLES})."
        )
    if text.rstrip().endswith("%"):
        raise SpecError(
            f"gate {text!r}: write the threshold as a fraction, not a percentage "
            f"(0.6, not 60%); {_EXAMPLES}."
        )
    threshold = float(match["number"])
    if name in FAIRNESS:
        if task != "classification":
            raise SpecError(
                f"gate {text!r}: {name} is defined for classification, not {task}; "
                f"use a metric gate such as '{metric_names(task)[0]} "
                f"{'<=' if not greater_is_better(metric_names(task)[0]) else '>='} ...'."
            )
        if index is not None or call is None or not call:
            raise SpecError(
                f"gate {text!r}: {name} needs a sensitive column in parentheses, "
                f"for example '{name}(sex) <= 0.1'."
            )
        column = _column(text, call, sensitive)
        return ParsedGate(text, "fairness", name, op, threshold, column)
    try:
        check_metric(task, name)
    except Invalid as exc:
        raise SpecError(
            f"gate {text!r}: {exc.message[:-1]} or a fairness measure "
            f"({', '.join(FAIRNESS)}); {_EXAMPLES}."
        ) from None
    if call is not None:
        raise SpecError(
            f"gate {text!r}: parentheses are for fairness measures; for {name} on the worst "
            f"slice of a column write '{name}[{call or 'column'}] {op} {match['number']}'."
        )
    slice_column = _column(text, index, sensitive) if index is not None else None
    return ParsedGate(text, "metric", name, op, threshold, slice_column)


def _column(text: str, raw: str | None, sensitive: Sequence[str] | None) -> str:
    column = (raw or "").strip().strip("'\"")
    if not column:
        raise SpecError(f"gate {text!r}: the column name is empty; {_EXAMPLES}.")
    if sensitive is not None and column not in sensitive:
        listed = ", ".join(sensitive) if sensitive else "none are declared"
        raise SpecError(
            f"gate {text!r}: column {column!r} is not a sensitive column ({listed}); add it "
            "to data.sensitive in shipyard.yaml or gate on one of those."
        )
    return column


def validate_gates(
    gates: Sequence[Gate],
    task: str,
    *,
    sensitive: Sequence[str] | None = None,
    base_dir: Path | None = None,
) -> list[ParsedGate | TestsGate]:
    """Check every gate up front (before training); raise one `SpecError` listing all problems.

    With ``base_dir``, test files must exist inside it.

    >>> validate_gates(["f1 >= 0.6", TestsGate(tests="checks/p.py")], "classification")
    """
    parsed: list[ParsedGate | TestsGate] = []
    problems: list[str] = []
    for gate in gates:
        try:
            if isinstance(gate, TestsGate):
                if base_dir is not None:
                    _test_file(gate.tests, base_dir)
                else:
                    _check_test_path(gate.tests)
                parsed.append(gate)
            else:
                parsed.append(parse_gate(gate, task, sensitive=sensitive))
        except SpecError as exc:
            problems.append(exc.message)
    if len(problems) == 1:
        raise SpecError(problems[0])
    if problems:
        raise SpecError(
            f"{len(problems)} gates are invalid:\n" + "\n".join(f"  {p}" for p in problems)
        )
    return parsed


# -- checking -----------------------------------------------------------------------------------


def check_gates(
    gates: Sequence[Gate],
    report: EvaluationReport,
    *,
    model: Any,
    sample: pd.DataFrame,
    target: pd.Series | None,
    base_dir: Path,
    sensitive: Sequence[str],
) -> list[GateResult]:
    """Check every gate against ``report`` (metric and fairness gates) or by running the
    user's tests on ``sample``; one `GateResult` per gate and per test function.

    A malformed gate raises `SpecError`; a failing or broken test is a failed result.
    """
    parsed = validate_gates(gates, report.task, sensitive=sensitive, base_dir=base_dir)
    results: list[GateResult] = []
    for gate in parsed:
        if isinstance(gate, TestsGate):
            results.extend(run_tests(gate.tests, base_dir, model=model, data=sample, y=target))
        elif gate.kind == "fairness":
            results.append(_check_fairness(gate, report))
        else:
            results.append(_check_metric(gate, report))
    return results


def _check_metric(gate: ParsedGate, report: EvaluationReport) -> GateResult:
    if gate.column is None:
        value = report.metrics.get(gate.name)
        where = ""
        if value is None:
            return _failed(gate, f"{gate.name} was not computed: {_why_missing(report)}")
    else:
        worst = report.worst_slice(gate.name, gate.column)
        if worst is None:
            return _failed(
                gate,
                f"no slice of {gate.column!r} has a value for {gate.name}: {_why_missing(report)}",
            )
        row = worst[1]
        value = row.metrics[gate.name]
        where = f" on the worst slice {gate.column} = {row.value} ({row.rows} rows)"
    return _result(gate, "metric", value, where)


def _check_fairness(gate: ParsedGate, report: EvaluationReport) -> GateResult:
    assert gate.column is not None
    measures = report.fairness.get(gate.column)
    if measures is None:
        return _failed(
            gate,
            f"{gate.name} was not computed for {gate.column!r}: {_why_missing(report)}",
            kind="fairness",
        )
    return _result(gate, "fairness", float(getattr(measures, gate.name)), f" over {gate.column}")


def _result(
    gate: ParsedGate, kind: Literal["metric", "fairness"], value: float, where: str
) -> GateResult:
    passed = gate.holds(value)
    verdict = "passes" if passed else "fails"
    return GateResult(
        gate=gate.text,
        kind=kind,
        passed=passed,
        value=value,
        threshold=gate.threshold,
        detail=f"{gate.name} = {value:.4g}{where}; {verdict} {gate.op} {gate.threshold:g}",
    )


def _failed(gate: ParsedGate, detail: str, *, kind: str = "metric") -> GateResult:
    return GateResult(
        gate=gate.text,
        kind="fairness" if kind == "fairness" else "metric",
        passed=False,
        threshold=gate.threshold,
        detail=detail,
    )


def _why_missing(report: EvaluationReport) -> str:
    return "; ".join(report.notes) or "the evaluation did not produce it"


# -- prediction tests ---------------------------------------------------------------------------


def _check_test_path(path: str) -> Path:
    relative = Path(path)
    if relative.suffix != ".py":
        raise SpecError(
            f"tests gate {path!r}: expected a Python file (.py) of test_* functions, "
            "for example {tests: checks/predictions.py}."
        )
    if relative.is_absolute() or ".." in relative.parts:
        raise SpecError(
            f"tests gate {path!r}: the path must stay inside the project directory; "
            "give it relative to shipyard.yaml, for example checks/predictions.py."
        )
    return relative


def _test_file(path: str, base_dir: Path) -> Path:
    _check_test_path(path)
    base = base_dir.resolve()
    file = (base / path).resolve()  # follows symlinks, so a link out of the project is caught
    if not file.is_relative_to(base):
        raise SpecError(
            f"tests gate {path!r} resolves to {str(file)!r}, outside the project directory "
            f"{str(base)!r}; keep test files inside it."
        )
    if not file.is_file():
        raise SpecError(
            f"tests gate {path!r}: file {str(file)!r} not found; create it or fix the path "
            "(relative to shipyard.yaml)."
        )
    return file


def run_tests(
    path: str, base_dir: Path, *, model: Any, data: pd.DataFrame, y: pd.Series | None
) -> list[GateResult]:
    """Run the ``test_*`` functions of one file; one `GateResult` per function.

    >>> run_tests("checks/predictions.py", Path("."), model=model, data=X.head(100), y=None)
    [GateResult(gate='tests:checks/predictions.py::test_no_negative', kind='tests', ...)]
    """
    file = _test_file(path, base_dir)
    label = f"tests:{path}"
    try:
        module = _load(file)
    except (Exception, SystemExit) as exc:
        return [
            GateResult(
                gate=label,
                kind="tests",
                passed=False,
                detail=f"could not import {path}: {_describe(exc, file)}",
            )
        ]
    tests = [
        (name, obj)
        for name, obj in vars(module).items()
        if name.startswith("test_") and inspect.isfunction(obj)
    ]
    if not tests:
        return [
            GateResult(
                gate=label,
                kind="tests",
                passed=False,
                detail=f"{path} defines no test_* functions; a tests gate must check something",
            )
        ]
    return [_run_one(f"{label}::{name}", func, file, model, data, y) for name, func in tests]


def _run_one(
    gate: str,
    func: Callable[..., Any],
    file: Path,
    model: Any,
    data: pd.DataFrame,
    y: pd.Series | None,
) -> GateResult:
    frame = data.copy()  # one test must not change what the next one sees
    available = {"model": model, "data": frame, "X": frame, "y": None if y is None else y.copy()}
    kwargs: dict[str, Any] = {}
    for name, param in inspect.signature(func).parameters.items():
        if name in available:
            kwargs[name] = available[name]
        elif param.default is inspect.Parameter.empty and param.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            return GateResult(
                gate=gate,
                kind="tests",
                passed=False,
                detail=f"{func.__name__} asks for argument {name!r}; test functions may take "
                f"{', '.join(TEST_ARGUMENTS)}",
            )
    try:
        func(**kwargs)
    except (Exception, SystemExit) as exc:
        return GateResult(gate=gate, kind="tests", passed=False, detail=_describe(exc, file))
    return GateResult(gate=gate, kind="tests", passed=True, detail="passed")


def _load(file: Path) -> ModuleType:
    name = "shipyard_gate_tests_" + hashlib.sha256(str(file).encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file}")
    module = importlib.util.module_from_spec(spec)
    # Registered while it runs, so dataclasses and pickling inside the file work.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def _describe(exc: BaseException, file: Path) -> str:
    """``AssertionError: message (predictions.py:12: assert ...)`` — the user's failing line."""
    message = str(exc).strip()
    where = ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(file)]
    if isinstance(exc, SyntaxError) and exc.lineno is not None:
        where = f" ({file.name}:{exc.lineno})"
        message = exc.msg
    elif frames:
        last = frames[-1]
        code = f": {last.line}" if last.line else ""
        where = f" ({file.name}:{last.lineno}{code})"
    if isinstance(exc, AssertionError) and not message:
        message = "assertion failed"
    return f"{type(exc).__name__}: {message}{where}"
