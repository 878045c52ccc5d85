"""`shipyard.yaml` parsing: the full design example, and errors that name the key and value."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from shipyard.core import spec as spec_module
from shipyard.core.errors import SpecError
from shipyard.core.spec import EverySpec, ParamRange, ProjectSpec, SqlSource, load_spec, parse_spec

# DESIGN.md section 2, verbatim.
DESIGN_EXAMPLE = """\
project: credit-risk
data:
  source: data/loans.csv            # CSV, Parquet, JSON lines, or {sql: "...", url: "postgresql://..."}
  target: default
  id: loan_id                       # row identity (feedback joins, erasure)
  time: issued_at                   # optional: time-ordered splits and drift windows
  sensitive: [sex, age]             # fairness slices; never used as features unless allowed
  contract: {income: {min: 0}, grade: {values: [A, B, C, D]}}   # overrides of the inferred schema
train:
  task: classification              # classification | regression | clustering
  metric: f1                        # the primary metric
  candidates:
    - estimator: sklearn.linear_model.LogisticRegression
      params: {C: {low: 0.01, high: 10, log: true}}
    - estimator: lightgbm.LGBMClassifier
      params: {n_estimators: [100, 300], learning_rate: {low: 0.01, high: 0.3, log: true}}
  search: {trials: 30, cv: 5}
gates:                              # a model that fails a gate is registered but never deployed
  - f1 >= 0.60
  - demographic_parity_difference(sex) <= 0.10
  - tests: checks/predictions.py    # unit tests for predictions
serve: {max_batch: 64, max_wait_ms: 2}
monitor: {window: 1h, drift_threshold: 0.2}
retrain:
  when: [drift, decay, {every: 7d}]
  rollout: {shadow: 1000, canary: [10, 50, 100], guard: {error_rate: 0.01, p99_ms: 50}}
"""

MINIMAL = "project: loans\ndata: {source: loans.csv}\n"


def _error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(textwrap.dedent(text))
    return info.value.message


def test_the_design_example_parses_into_typed_objects() -> None:
    spec = parse_spec(DESIGN_EXAMPLE)
    assert spec.project == "credit-risk"
    assert spec.dataset_name == "credit-risk"
    assert spec.data.source == "data/loans.csv"
    assert (spec.data.target, spec.data.id, spec.data.time) == ("default", "loan_id", "issued_at")
    assert spec.data.sensitive == ["sex", "age"]
    assert spec.data.contract["income"].min == 0
    assert spec.data.contract["grade"].values == ["A", "B", "C", "D"]
    assert spec.data.contract["grade"].severity == "error"

    assert spec.train.task == "classification"
    assert spec.train.metric == "f1"
    lr, lgbm = spec.train.candidates
    assert lr.estimator == "sklearn.linear_model.LogisticRegression"
    assert lr.params["C"] == ParamRange(low=0.01, high=10, log=True)
    assert lgbm.params["n_estimators"] == [100, 300]
    assert lgbm.params["learning_rate"] == ParamRange(low=0.01, high=0.3, log=True)
    assert (spec.train.search.trials, spec.train.search.cv) == (30, 5)

    assert spec.gates == [
        "f1 >= 0.60",
        "demographic_parity_difference(sex) <= 0.10",
        spec_module.TestsGate(tests="checks/predictions.py"),  # "Test*" would be collected
    ]
    assert (spec.serve.max_batch, spec.serve.max_wait_ms) == (64, 2)
    assert (spec.monitor.window, spec.monitor.drift_threshold) == ("1h", 0.2)
    assert spec.retrain.when == ["drift", "decay", EverySpec(every="7d")]
    assert spec.retrain.rollout.shadow == 1000
    assert spec.retrain.rollout.canary == [10, 50, 100]
    assert spec.retrain.rollout.guard.error_rate == 0.01
    assert spec.retrain.rollout.guard.p99_ms == 50


def test_the_design_example_is_the_one_in_design_md() -> None:
    design = Path(__file__).resolve().parents[3] / "shared" / "docs" / "DESIGN.md"
    if not design.exists():
        pytest.skip(f"{design} is not checked out next to this repository")
    assert DESIGN_EXAMPLE in design.read_text()


def test_a_minimal_spec_gets_the_defaults() -> None:
    spec = parse_spec(MINIMAL)
    assert spec == ProjectSpec(project="loans", data={"source": "loans.csv"})  # type: ignore[arg-type]
    assert spec.train.search.trials == 20
    assert spec.retrain.rollout.canary == [10, 50, 100]


def test_sql_source() -> None:
    spec = parse_spec("project: p\ndata: {source: {sql: select 1, url: 'sqlite:///x.db'}}\n")
    assert spec.data.source == SqlSource(sql="select 1", url="sqlite:///x.db")


def test_spec_objects_are_frozen() -> None:
    spec = parse_spec(MINIMAL)
    with pytest.raises(ValueError, match="frozen"):
        spec.project = "other"  # type: ignore[misc]


# -- unknown keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        (MINIMAL + "trian: {task: regression}\n", "trian", "{'task': 'regression'}"),
        (MINIMAL + "serve: {max_batch: 8, max_wiat_ms: 3}\n", "serve.max_wiat_ms", "3"),
        ("project: p\ndata: {source: a.csv, targte: y}\n", "data.targte", "'y'"),
        (
            MINIMAL + "train: {search: {trials: 3, folds: 4}}\n",
            "train.search.folds",
            "4",
        ),
        (
            MINIMAL + "train: {candidates: [{estimator: e, parms: {}}]}\n",
            "train.candidates.0.parms",
            "{}",
        ),
        (
            MINIMAL + "retrain: {rollout: {guard: {p95_ms: 9}}}\n",
            "retrain.rollout.guard.p95_ms",
            "9",
        ),
        # User-chosen keys that look like pydantic's union tags must stay in the path.
        (
            "project: p\ndata: {source: a.csv, contract: {Income: {mn: 0}}}\n",
            "data.contract.Income.mn",
            "0",
        ),
        (
            "project: p\ndata: {source: a.csv, contract: {str: {mn: 0}}}\n",
            "data.contract.str.mn",
            "0",
        ),
        ("project: p\ndata: {source: a.csv, none: 1}\n", "data.none", "1"),
        (
            MINIMAL + "train: {candidates: [{estimator: e, params: {C: {low: 1, hihg: 2}}}]}\n",
            "train.candidates.0.params.C.hihg",
            "2",
        ),
        ("project: p\ndata: {source: {sql: q, url: u, query: z}}\n", "data.source.query", "'z'"),
    ],
)
def test_unknown_key_names_its_dotted_path(text: str, key: str, value: str) -> None:
    message = _error(text)
    assert message.startswith("shipyard.yaml is not a valid project spec:\n")
    assert f"  {key}: unknown key (value {value}); remove it or check its spelling." in message, (
        message
    )


def test_every_unknown_key_is_listed() -> None:
    message = _error(MINIMAL + "colour: red\nflavour: sweet\n")
    assert "  colour: unknown key" in message
    assert "  flavour: unknown key" in message


# -- wrong types and values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            MINIMAL + "train: {search: {trials: many}}\n",
            "  train.search.trials: got 'many'; input should be a valid integer",
        ),
        (
            MINIMAL + "train: {search: {trials: 0}}\n",
            "  train.search.trials: got 0; input should be greater than or equal to 1",
        ),
        (
            MINIMAL + "train: {task: ranking}\n",
            "  train.task: got 'ranking'; input should be 'classification', 'regression' or "
            "'clustering'",
        ),
        (
            MINIMAL + "serve: {max_batch: [1, 2]}\n",
            "  serve.max_batch: got [1, 2]; input should be a valid integer",
        ),
        (
            "project: p\ndata: {source: a.csv, sensitive: sex}\n",
            "  data.sensitive: got 'sex'; input should be a valid list",
        ),
        (
            "project: p\ndata: {source: a.csv, contract: {income: {min: low}}}\n",
            "  data.contract.income.min: got 'low'; input should be a valid number",
        ),
        (
            MINIMAL + "train: {test_size: 1.5}\n",
            "  train.test_size: got 1.5; input should be less than 1",
        ),
        (
            "project: 42\ndata: {source: a.csv}\n",
            "  project: got 42; input should be a valid string",
        ),
        (
            MINIMAL + "train: [a, b]\n",
            "  train: got ['a', 'b']; input should be a valid dictionary",
        ),
    ],
)
def test_wrong_type_names_key_and_value(text: str, expected: str) -> None:
    message = _error(text)
    assert expected in message, message


def test_error_details_are_plain_data() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(MINIMAL + "train: {search: {trials: many}}\n")
    errors = info.value.details["errors"]
    assert errors[0]["key"] == "train.search.trials"
    assert errors[0]["value"] == "'many'"


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("data: {source: a.csv}\n", "project"),
        ("project: loans\n", "data"),
        ("project: loans\ndata: {source: {sql: select 1}}\n", "data.source.url"),
        (MINIMAL + "gates: [{}]\n", "gates.0.tests"),
    ],
)
def test_missing_key_is_named(text: str, missing: str) -> None:
    assert f"  {missing}: required key is missing." in _error(text)


def test_both_required_keys_missing_are_both_named() -> None:
    message = _error("serve: {max_batch: 1}\n")
    assert "  project: required key is missing." in message
    assert "  data: required key is missing." in message


@pytest.mark.parametrize("name", ["credit risk", "1loans", "../etc", "-x", "a" * 65, ""])
def test_invalid_project_name_is_a_spec_error(name: str) -> None:
    message = _error(f"project: {name!r}\ndata: {{source: a.csv}}\n")
    assert f"  project: got {name!r}; project {name!r} is not allowed: use 1-64 letters" in message


# -- not a spec at all --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["project: [unclosed\n", "project: p\n  data: : :\n", "a: b\n\tc: d\n", "{{{{"],
)
def test_bad_yaml_is_a_spec_error(text: str) -> None:
    with pytest.raises(SpecError, match=r"^shipyard\.yaml: not valid YAML: "):
        parse_spec(text)


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- project\n- data\n", "list"), ("just a string\n", "str"), ("", "NoneType"), ("42", "int")],
)
def test_non_mapping_is_a_spec_error(text: str, kind: str) -> None:
    with pytest.raises(
        SpecError,
        match=rf"expected a mapping with at least 'project' and 'data', got {kind}\.",
    ):
        parse_spec(text)


def test_source_name_appears_in_messages() -> None:
    with pytest.raises(SpecError, match=r"^projects/a\.yaml is not a valid project spec"):
        parse_spec("data: {source: a.csv}\n", source="projects/a.yaml")


# -- files --------------------------------------------------------------------------------------


def test_load_spec_reads_a_file_and_records_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "proj" / "shipyard.yaml"
    path.parent.mkdir()
    path.write_text(DESIGN_EXAMPLE)
    spec = load_spec(path)
    assert spec.project == "credit-risk"
    assert spec.base_dir == path.parent
    assert "base_dir" not in spec.model_dump()


def test_load_spec_default_path_is_shipyard_yaml_in_the_cwd(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text(MINIMAL)  # conftest chdirs into tmp_path
    assert load_spec().project == "loans"


def test_load_spec_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("project: p\n")
    with pytest.raises(SpecError, match=rf"^{path} is not a valid project spec"):
        load_spec(path)


@pytest.mark.parametrize("which", ["missing", "directory"])
def test_load_spec_on_a_missing_file(tmp_path: Path, which: str) -> None:
    path = tmp_path / "nope.yaml"
    if which == "directory":
        path.mkdir()
    with pytest.raises(
        SpecError, match=rf"spec file '{path}' not found; create it .* or pass --spec PATH"
    ):
        load_spec(path)


def test_a_spec_for_a_dataset_already_ingested_needs_no_source() -> None:
    spec = parse_spec("project: p\ndata: {name: flights, target: late}\n")
    assert spec.data.source is None and spec.data.name == "flights"
