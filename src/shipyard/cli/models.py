"""`shipyard models`: list, show, alias, compile to ONNX and read the cards of registered models."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.table import Column
from rich.text import Text

from shipyard.cli import _output
from shipyard.core.errors import Invalid, NotFound
from shipyard.core.records import ModelVersion, Ref
from shipyard.registry import get_document, get_version, list_models, list_versions

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.store.workspace import Workspace

app = typer.Typer(help="List, show, alias and document registered models.", no_args_is_help=True)


@app.command("ls")
def ls(ctx: typer.Context, wide: _output.WideFlag = False, json: _output.JsonFlag = False) -> None:
    """Every model with its versions, statuses and aliases; the primary metric first."""
    with _output.workspace(ctx) as ws:
        versions = [v for name in list_models(ws) for v in list_versions(ws, name)]
        primary = _primary_metrics(ws, versions)
    if not versions:
        table: RenderableType = Text("No models yet. `shipyard train` registers one.")
    else:
        shared = set(primary.values())
        one = next(iter(shared)) if len(shared) == 1 else None  # then it heads its column
        others = not primary or wide or _output.console().width >= 100  # else only primary
        table = _output.table(
            "Models",
            [
                _output.ident("MODEL"),
                "STATUS",
                _output.ident("ALIASES", min_width=8),
                "FLAVOR",
                Column(one.upper() if one else "PRIMARY", justify="right"),
                *(["OTHER METRICS" if primary else "METRICS"] if others else []),
                _output.when_column("CREATED (UTC)"),
            ],
            [
                (
                    v.ref,
                    _status(v),
                    ", ".join(v.aliases),
                    v.flavor,
                    _primary_cell(v, primary.get(v.id), named=one is None),
                    *([_metrics(v, skip=primary.get(v.id))] if others else []),
                    v.created_at,
                )
                for v in versions
            ],
        )
    _output.emit(versions, json_mode=json, table=table)


def _primary_metrics(ws: Workspace, versions: list[ModelVersion]) -> dict[str, str]:
    """Version id → its primary metric: what its training run records (`params.metric`),
    else the one of ./shipyard.yaml for versions of that project."""
    from shipyard.core.errors import NotFound, ShipyardError
    from shipyard.train import get_run

    found: dict[str, str] = {}
    by_run: dict[str, str | None] = {}
    for v in versions:
        if v.run_id and v.run_id not in by_run:
            try:
                metric = get_run(ws, v.run_id).params.get("metric")
            except NotFound:  # a run deleted by hand: fall back to the spec
                metric = None
            by_run[v.run_id] = metric if isinstance(metric, str) else None
        if metric := by_run.get(v.run_id or ""):
            found[v.id] = metric
    missing = [v for v in versions if v.id not in found]
    if missing and Path("shipyard.yaml").is_file():
        from shipyard.core.spec import load_spec

        try:
            spec = load_spec("shipyard.yaml")
        except ShipyardError:  # a broken spec is `train`'s to report; listing still works
            return found
        if spec.train and (metric := spec.train.metric):
            found.update({v.id: metric for v in missing if v.model == spec.project})
    return found


def _primary_cell(v: ModelVersion, metric: str | None, *, named: bool) -> str:
    value = v.metrics.get(metric) if metric else None
    if not isinstance(value, float | int):
        return ""
    return f"{metric} {value:.3f}" if named else f"{value:.3f}"


def _status(v: ModelVersion) -> Text:
    style = {"rejected": "red", "deployed": "green", "approved": "green", "archived": "dim"}.get(
        v.status.value, ""
    )
    return Text(v.status.value, style=style)


def _metrics(v: ModelVersion, most: int = 2, skip: str | None = None) -> str:
    return "  ".join(
        f"{k} {val:.3f}"
        for k, val in [(k, val) for k, val in v.metrics.items() if k != skip][:most]
        if isinstance(val, float | int)
    )


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@N, NAME@ALIAS or NAME (latest).")],
    json: _output.JsonFlag = False,
) -> None:
    """A model version: status, lineage, estimator, signature, metrics and gates."""
    with _output.workspace(ctx) as ws:
        v = get_version(ws, ref)
        estimator, params = _estimator(ws, v)
    head = Text.assemble(
        (v.ref, "bold"),
        f"  ({v.id})  ",
        _status(v),
        f"  aliases: {', '.join(v.aliases) or '-'}\n",
        f"task {v.task}  flavor {v.flavor}  artifact {v.artifact[:12]}\n",
        f"run {v.run_id or '-'}  dataset version {v.dataset_version_id or '-'}\n",
        f"created {_output.when(v.created_at)} UTC by {v.created_by}\n",
        "estimator ",
        (estimator or "not recorded (registered without a training run)", "bold"),
        *(
            ["\nhyperparameters: ", _params(params) or "the estimator's defaults"]
            if estimator
            else []
        ),
    )
    sig = _output.table(
        "Signature (inputs)",
        ["COLUMN", "TYPE", "NULLABLE", "RANGE / VALUES"],
        [
            (
                c.name,
                c.dtype,
                "yes" if c.nullable else "no",
                "{" + ", ".join(c.values[:6]) + (", …" if len(c.values) > 6 else "") + "}"
                if c.values
                else (f"[{c.min:g}, {c.max:g}]" if c.min is not None and c.max is not None else ""),
            )
            for c in v.signature.inputs
        ],
    )
    out = Text(
        f"output: {v.signature.output}" + (f" {v.signature.classes}" if v.signature.classes else "")
    )
    metrics = _output.table(
        "Held-out metrics",
        ["METRIC", "VALUE"],
        [(k, f"{val:.4f}") for k, val in v.metrics.items() if isinstance(val, float | int)],
    )
    gates = _output.table(
        "Gates",
        ["GATE", "RESULT", "VALUE", "DETAIL"],
        [
            (
                g.gate,
                Text("pass", style="green") if g.passed else Text("FAIL", style="red"),
                "" if g.value is None else f"{g.value:.4f}",
                g.detail,
            )
            for g in v.gates
        ],
    )
    docs = Text(
        "documents: " + ", ".join(v.documents) + f"  (shipyard models card {v.ref})", style="dim"
    )
    data = {**v.model_dump(mode="json"), "estimator": estimator, "hyperparameters": params}
    _output.emit(data, json_mode=json, table=Group(head, sig, out, metrics, gates, docs))


def _estimator(ws: Workspace, v: ModelVersion) -> tuple[str | None, dict[str, Any]]:
    """The estimator and hyperparameters the version was trained with, as its run recorded
    them (the search run keeps the best trial's as `best.*`)."""
    if v.run_id is None:
        return None, {}
    from shipyard.train import get_run

    try:
        run = get_run(ws, v.run_id)
    except NotFound:
        return None, {}
    estimator = run.params.get("best.estimator")
    params = {
        k.removeprefix("best."): val
        for k, val in run.params.items()
        if k.startswith("best.") and k != "best.estimator"
    }
    return (str(estimator) if estimator else None), params


def _params(params: dict[str, Any]) -> str:
    return "  ".join(
        f"{k}={val:.4g}" if isinstance(val, float) else f"{k}={val}" for k, val in params.items()
    )


@app.command("alias")
def alias(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version, e.g. credit-risk@3.")],
    name: Annotated[str, typer.Argument(help="The alias, e.g. champion or challenger.")],
    json: _output.JsonFlag = False,
) -> None:
    """Point an alias at a version (a rejected version can never be champion); endpoints made
    from NAME@ALIAS follow it."""
    from shipyard.serve.endpoints import move_alias

    with _output.workspace(ctx) as ws:
        v, followed = move_alias(ws, ref, name)
    if json:
        _output.print_json(v)
        return
    console = _output.console()
    console.print(f"{Ref.parse(ref, what='model reference').name}@{name} → {v.ref}", markup=False)
    for e in followed.moved:
        console.print(
            f"endpoint {e.name} follows it: champion → {e.champion_ref} (revision {e.revision})",
            markup=False,
        )
    for problem in followed.problems:
        _output.err_console().print(f"warning: {problem}", markup=False, highlight=False)


@app.command("card")
def card(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@N or NAME@ALIAS.")],
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the HTML card to this file.")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report", help="Write the HTML evaluation report (with plots) to this file."
        ),
    ] = None,
) -> None:
    """Print the model card (Markdown); --html/--report write the HTML card and report."""
    with _output.workspace(ctx) as ws:
        v = get_version(ws, ref)
        markdown = get_document(ws, v.ref, "card.md")
        if html:
            html.write_bytes(get_document(ws, v.ref, "card.html"))
        if report:
            report.write_bytes(get_document(ws, v.ref, "evaluation.html"))
    sys.stdout.write(markdown.decode())
    for path in (html, report):
        if path:
            _output.err_console().print(f"wrote {path}")


@app.command("onnx")
def onnx(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version, e.g. credit-risk@3.")],
    check: Annotated[
        Path,
        typer.Option("--check", help="Held-out rows (.csv or .parquet) with the feature columns."),
    ],
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Largest allowed |ONNX - original| difference.")
    ] = 1e-5,
    json: _output.JsonFlag = False,
) -> None:
    """Compile a version to ONNX; it is kept only if it matches the original on --check."""
    from shipyard.registry import compile_onnx  # scikit-learn, LightGBM, ONNX: only here

    rows = _read_rows(check)
    with _output.workspace(ctx) as ws:
        result = compile_onnx(ws, ref, rows, tolerance=tolerance)
    if json:
        _output.print_json(
            {
                "accepted": result.accepted,
                "max_abs_diff": result.max_abs_diff if math.isfinite(result.max_abs_diff) else None,
                "rows": result.rows,
                "reason": result.reason,
            }
        )
        return
    verdict = Text("accepted", style="green") if result.accepted else Text("rejected", style="red")
    _output.console().print(
        Text.assemble(
            "ONNX ",
            verdict,
            f": max |diff| {result.max_abs_diff:.3g} on {result.rows} rows "
            f"(tolerance {tolerance:g})\n{result.reason}",
        )
    )


def _read_rows(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise Invalid(
            f"--check {path} is a {suffix or 'suffix-less'} file; give a .csv or .parquet."
        )
    if not path.is_file():
        raise Invalid(f"--check {path} does not exist; give a .csv or .parquet of held-out rows.")
    import pandas as pd  # only `models onnx` reads rows; the rest of the CLI does not load pandas

    return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
