"""`shipyard data`: ingest, list, show, profile, diff and validate datasets."""

from __future__ import annotations

import contextlib
import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Group, RenderableType
from rich.table import Column
from rich.text import Text

from shipyard.cli import _output
from shipyard.core.errors import Invalid, NotFound
from shipyard.core.records import (
    CleaningStep,
    ColumnProfile,
    Dataset,
    DatasetVersion,
    Ref,
    ValidationReport,
)

if TYPE_CHECKING:
    from shipyard.data import DatasetDiff
    from shipyard.data.diff import Shift

# shipyard.data (pandas, Arrow) and the spec loader (YAML, pydantic models) are imported inside
# the commands that use them, so that building the CLI and the other command groups stay fast.

app = typer.Typer(
    help="Ingest, version, validate, profile and compare datasets.", no_args_is_help=True
)

Multi = Annotated[list[str] | None, typer.Option()]
T = TypeVar("T")


def _columns(table: Any) -> list[Column]:
    """The columns of a Rich table, or of the one `_output.table()` wraps."""
    return list(getattr(table, "table", table).columns)


def _whole(table: T, *headers: str) -> T:
    """Keep the cells of these columns whole (column names, refs, hashes, times): the other
    columns wrap first, and a cell that still does not fit is cut with an ellipsis rather than
    broken in the middle of a word."""
    for column in _columns(table):
        if column.header in headers:
            column.no_wrap = True
            column.overflow = "ellipsis"
    return table


def _narrowing(table: T, header: str) -> T:
    """Keep every cell whole (numbers, types, sparklines) except in the `header` column, the
    one that gives up width on a narrow terminal: it wraps at spaces and cuts a word that
    still does not fit with an ellipsis, never mid-word."""
    for column in _columns(table):
        column.no_wrap = column.header != header
        column.overflow = "ellipsis"
    return table


def _steps(
    trim: bool,
    lower: list[str],
    empty_to_null: bool,
    coerce: list[str],
    fill: list[str],
    drop_missing: list[str],
    dedupe: bool,
    dedupe_on: list[str],
) -> list[CleaningStep]:
    """Cleaning flags → steps, in a fixed order: tidy text, parse, fill, drop, dedupe."""
    steps: list[CleaningStep] = []
    if trim:
        steps.append(CleaningStep(op="trim"))
    if empty_to_null:
        steps.append(CleaningStep(op="empty_to_null"))
    if lower:
        steps.append(CleaningStep(op="lower", columns=lower))
    for spec in coerce:
        column, _, to = spec.partition(":")
        steps.append(CleaningStep(op="coerce", columns=[column], params={"to": to or "float64"}))
    for spec in fill:
        column, sep, value = spec.partition("=")
        if not sep or not column:
            raise Invalid(
                f"--fill {spec!r}: expected COLUMN=VALUE or COLUMN=median|mean|mode, e.g. "
                "--fill income=median."
            )
        params: dict[str, object] = (
            {"strategy": value}
            if value in ("median", "mean", "mode")
            else {"value": _literal(value)}
        )
        steps.append(CleaningStep(op="fill", columns=[column], params=params))
    if drop_missing:
        steps.append(CleaningStep(op="drop_missing", columns=drop_missing))
    if dedupe or dedupe_on:
        steps.append(CleaningStep(op="dedupe", columns=dedupe_on))
    return steps


def _literal(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@app.command("ingest")
def ingest_cmd(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Argument(
            metavar="SOURCE",
            help="CSV, TSV, Parquet or JSON-lines file, or a SQLAlchemy URL with --sql. "
            "Omit it to ingest what shipyard.yaml's data: section declares.",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="Dataset name (default: from the spec)."),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", metavar="COL", help="The label column.")
    ] = None,
    id_: Annotated[
        str | None,
        typer.Option("--id", metavar="COL", help="The row-identity column (must be unique)."),
    ] = None,
    time: Annotated[
        str | None, typer.Option("--time", metavar="COL", help="The time column (orders rows).")
    ] = None,
    sensitive: Annotated[
        list[str] | None,
        typer.Option("--sensitive", metavar="COL", help="A sensitive column (repeat)."),
    ] = None,
    sql: Annotated[
        str | None,
        typer.Option("--sql", metavar="QUERY", help="Query to run; SOURCE is then a database URL."),
    ] = None,
    format_: Annotated[
        str | None,
        typer.Option(
            "--format", metavar="FORMAT", help="csv, parquet or jsonl (default: from the suffix)."
        ),
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            metavar="FILE",
            help="Project spec (default ./shipyard.yaml when SOURCE is omitted).",
        ),
    ] = None,
    allow: Annotated[
        bool,
        typer.Option("--allow", help="Store the version even if blocking rules fail (recorded)."),
    ] = False,
    trim: Annotated[
        bool, typer.Option("--trim", help="Strip whitespace from text values.")
    ] = False,
    empty_to_null: Annotated[
        bool, typer.Option("--empty-to-null", help="Blank text becomes missing.")
    ] = False,
    lower: Annotated[
        list[str] | None, typer.Option("--lower", metavar="COL", help="Lower-case a text column.")
    ] = None,
    coerce: Annotated[
        list[str] | None,
        typer.Option(
            "--coerce",
            metavar="COL[:TYPE]",
            help="Parse a column as TYPE (default float64); bad values become missing.",
        ),
    ] = None,
    fill: Annotated[
        list[str] | None,
        typer.Option(
            "--fill",
            metavar="COL=VALUE",
            help="Fill missing values with a constant or median|mean|mode.",
        ),
    ] = None,
    drop_missing: Annotated[
        list[str] | None,
        typer.Option("--drop-missing", metavar="COL", help="Drop rows missing this column."),
    ] = None,
    dedupe: Annotated[bool, typer.Option("--dedupe", help="Drop exact duplicate rows.")] = False,
    dedupe_on: Annotated[
        list[str] | None,
        typer.Option("--dedupe-on", metavar="COL", help="Drop rows that repeat these columns."),
    ] = None,
    json: _output.JsonFlag = False,
) -> None:
    """Ingest a file or query as a new, validated, profiled dataset version."""
    from shipyard.data import ingest, ingest_spec, open_source

    steps = _steps(
        trim,
        lower or [],
        empty_to_null,
        coerce or [],
        fill or [],
        drop_missing or [],
        dedupe,
        dedupe_on or [],
    )
    with _output.workspace(ctx) as ws, _output.progress(disable=json) as bar:
        task = bar.add_task(f"ingesting {source or 'spec data'}", total=None)

        def on_rows(rows: int) -> None:
            bar.update(task, completed=rows)

        if source is None:
            from shipyard.core.spec import load_spec

            project = load_spec(spec or "shipyard.yaml")
            data_spec = project.data
            if steps:
                data_spec = data_spec.model_copy(update={"clean": [*data_spec.clean, *steps]})
            result = ingest_spec(
                ws,
                data_spec,
                name=name or project.dataset_name,
                base_dir=project.base_dir,
                allow=allow,
                progress=on_rows,
            )
        else:
            if name is None:
                raise Invalid(
                    "name the dataset with --name (e.g. --name loans), "
                    "or omit SOURCE to use shipyard.yaml."
                )
            src = open_source(source, sql=sql) if sql else open_source(source, format=format_)
            result = ingest(
                ws,
                src,
                name=name,
                target=target,
                id=id_,
                time=time,
                sensitive=sensitive or [],
                steps=steps,
                allow=allow,
                progress=on_rows,
            )
    version = result.version
    if json:
        _output.print_json({"created": result.created, "version": version})
        return
    out = _output.console()
    if result.created:
        out.print(
            f"[green]✓[/green] stored [bold]{version.ref}[/bold]: {version.rows:,} rows × "
            f"{version.columns} columns (content {version.content_hash[:12]})"
        )
    else:
        out.print(
            f"[yellow]=[/yellow] unchanged: the same data is already [bold]{version.ref}[/bold] "
            "(nothing new stored)"
        )
    for step in version.lineage.steps:
        cols = ", ".join(step.columns) or "all columns"
        out.print(
            f"  cleaned: {step.op} on {cols}: {step.rows_changed or 0:,} rows changed", markup=False
        )
    out.print(_report_table(version.validation, title=f"validation of {version.ref}"))
    if not version.validation.passed:
        out.print(
            f"Stored with {len(version.validation.errors)} blocking violation(s) because of "
            "--allow; they are recorded in the version (`shipyard data show "
            f"{version.ref}`).",
            style="yellow",
            markup=False,
        )


@app.command("ls")
def ls(ctx: typer.Context, wide: _output.WideFlag = False, json: _output.JsonFlag = False) -> None:
    """List datasets with their latest version."""
    from shipyard.data import list_datasets

    with _output.workspace(ctx) as ws:
        found = list_datasets(ws)
    data = [_dataset_summary(d, v) for d, v in found]
    if not found:
        table: RenderableType = Text(
            "No datasets yet. Ingest one with `shipyard data ingest FILE --name NAME`."
        )
    else:
        table = _output.table(
            "Datasets",
            [
                _output.ident("NAME"),
                "VERSIONS",
                "ROWS",
                "COLS",
                "TARGET",
                "ID",
                "TIME",
                _output.when_column("UPDATED (UTC)"),
            ],
            [
                (
                    d.name,
                    d.versions,
                    f"{v.rows:,}" if v else "",
                    v.columns if v else "",
                    d.target,
                    d.id_column,
                    d.time_column,
                    v.created_at if v else d.created_at,
                )
                for d, v in found
            ],
        )
    _output.emit(data, json_mode=json, table=table)


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            metavar="REF", help="NAME (all versions) or NAME@N / NAME@latest (one version)."
        ),
    ],
    json: _output.JsonFlag = False,
) -> None:
    """Show a dataset's versions, or one version's schema, lineage and validation."""
    from shipyard.data import get_dataset, get_version, get_version_by_id, list_versions

    parsed = Ref.parse(ref, what="dataset reference")
    with _output.workspace(ctx) as ws:
        if "@" not in ref:
            dataset = get_dataset(ws, parsed.name)
            versions = list_versions(ws, parsed.name)
            data = {"dataset": dataset, "versions": [_summary(v) for v in versions]}
            table = _versions_table(dataset, versions)
            _output.emit(data, json_mode=json, table=table)
            return
        version = get_version(ws, parsed)
        parent = version.lineage.parent
        if parent and not json:
            with contextlib.suppress(NotFound):  # erased since: the id is all there is
                parent = f"{get_version_by_id(ws, parent).ref} ({parent})"
    _output.emit(version, json_mode=json, table=_version_view(version, parent))


def _versions_table(dataset: Dataset, versions: list[DatasetVersion]) -> RenderableType:
    authors = {v.created_by for v in versions}
    by_one = len(authors) == 1  # then said once in the title, which leaves room at 80 columns
    title = (
        f"{dataset.name}  target={dataset.target or '-'}  id={dataset.id_column or '-'}  "
        f"time={dataset.time_column or '-'}" + (f"  (by {authors.pop()})" if by_one else "")
    )
    heads = ["VERSION", "ROWS", "COLS", "VIOLATIONS", "SOURCE", "CREATED (UTC)", "BY", "CONTENT"]
    rows = [
        [
            v.ref,
            f"{v.rows:,}",
            v.columns,
            _violations(v.validation),
            Path(v.lineage.source).name,
            v.created_at,
            v.created_by,
            v.content_hash[:12],
        ]
        for v in versions
    ]
    if by_one:
        heads.remove("BY")
        rows = [row[:6] + row[7:] for row in rows]
    table = _output.table(title, heads, rows)
    _columns(table)[heads.index("SOURCE")].overflow = "ellipsis"  # a file name is not split
    return _whole(table, "VERSION", "CREATED (UTC)", "BY", "CONTENT")


def _dataset_summary(d: Dataset, latest: DatasetVersion | None) -> dict[str, object]:
    """A dataset in `data ls --json`: its roles and its latest version's figures. The schema,
    profile and validation report are `data show NAME@N --json`'s."""
    return {
        "name": d.name,
        "versions": d.versions,
        "latest": latest.ref if latest else None,
        "latest_id": latest.id if latest else None,
        "rows": latest.rows if latest else None,
        "columns": latest.columns if latest else None,
        "content_hash": latest.content_hash if latest else None,
        "errors": len(latest.validation.errors) if latest else None,
        "warnings": len(latest.validation.violations) - len(latest.validation.errors)
        if latest
        else None,
        "target": d.target,
        "id": d.id_column,
        "time": d.time_column,
        "sensitive": d.sensitive,
        "created_at": d.created_at,
        "created_by": d.created_by,
        "updated_at": latest.created_at if latest else d.created_at,
    }


def _summary(v: DatasetVersion) -> dict[str, object]:
    return {
        "ref": v.ref,
        "id": v.id,
        "rows": v.rows,
        "columns": v.columns,
        "content_hash": v.content_hash,
        "violations": len(v.validation.violations),
        "source": v.lineage.source,
        "created_at": v.created_at,
        "created_by": v.created_by,
    }


def _violations(report: ValidationReport) -> str:
    errors = len(report.errors)
    warnings = len(report.violations) - errors
    counts = [
        f"{n} {word}{'s' if n != 1 else ''}"
        for n, word in ((errors, "error"), (warnings, "warning"))
        if n
    ]
    return ", ".join(counts) or "none"


def _version_view(v: DatasetVersion, parent: str | None) -> RenderableType:
    lineage = v.lineage
    head = Text.assemble(
        (f"{v.ref}", "bold"),
        f"  ({v.id})  {v.rows:,} rows × {v.columns} columns\n",
        f"content  {v.content_hash}\n",
        f"source   {lineage.source} ({lineage.format})"
        + (f"\nquery    {lineage.query}" if lineage.query else "")
        + "\n",
        f"parent   {parent or '-'}\n",
        f"created  {_output.when(v.created_at)} UTC by {v.created_by}",
    )
    schema = _whole(
        _output.table(
            "Schema (contract)",
            ["COLUMN", "TYPE", "ROLE", "NULL", "RANGE / VALUES", "BLOCKING"],
            [
                (
                    c.name,
                    c.dtype,
                    c.role,
                    "yes" if c.nullable else "no",
                    _rule_text(c.min, c.max, c.values),
                    ", ".join(sorted(k for k, s in c.severity.items() if s == "error")) or "",
                )
                for c in v.schema_.columns
            ],
        ),
        "COLUMN",
        "RANGE / VALUES",
    )
    parts: list[RenderableType] = [head, schema]
    if lineage.steps:
        parts.append(
            _output.table(
                "Cleaning steps",
                ["STEP", "COLUMNS", "PARAMS", "ROWS CHANGED"],
                [
                    (
                        s.op,
                        ", ".join(s.columns) or "all",
                        s.params or "",
                        f"{s.rows_changed or 0:,}",
                    )
                    for s in lineage.steps
                ],
            )
        )
    parts.append(_report_table(v.validation, title="Validation at ingest"))
    return Group(*parts)


def _rule_text(lo: float | None, hi: float | None, values: list[str] | None) -> str:
    if values is not None:
        shown = ", ".join(values[:6]) + (f", … ({len(values)})" if len(values) > 6 else "")
        return "{" + shown + "}"
    if lo is None and hi is None:
        return ""
    return f"[{_num(lo)}, {_num(hi)}]"


def _num(value: float | None) -> str:
    if value is None:
        return ""
    if float(value).is_integer() or abs(value) >= 10_000:  # 25,530 rather than 2.553e+04
        return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.0f}"
    return f"{value:,.4g}"


def _report_table(report: ValidationReport, *, title: str) -> RenderableType:
    if not report.violations:
        return Text(f"{title}: {report.rows:,} rows, every rule passed.", style="green")
    table = _output.table(
        f"{title}: {report.rows:,} rows, {_violations(report)}",
        ["SEVERITY", "COLUMN", "ROWS", "PROBLEM (e.g.)"],
        [
            (
                Text(v.severity, style="red" if v.severity == "error" else "yellow"),
                v.column,
                f"{v.count:,}",
                Text(v.message).append(
                    "".join(f"\n  {_example(e)}" for e in v.examples), style="dim"
                ),
            )
            for v in report.violations
        ],
    )
    return _whole(table, "COLUMN")


def _example(e: dict[str, object]) -> str:
    if "row" in e:
        return f"row {e['row']}: {e.get('value')!r}"
    return f"{e.get('value')!r} ×{e.get('rows')}"


@app.command("profile")
def profile(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="NAME, NAME@N or NAME@latest.")],
    json: _output.JsonFlag = False,
) -> None:
    """Per-column statistics, quantiles, histograms and top categories of a version."""
    from shipyard.data import get_version

    with _output.workspace(ctx) as ws:
        version = get_version(ws, ref)
    p = version.profile
    times = [c for c in p.columns if c.histogram is not None and c.dtype in ("timestamp", "date")]
    numeric = [c for c in p.columns if c.histogram is not None and c not in times]
    other = [c for c in p.columns if c.histogram is None]
    parts: list[RenderableType] = []
    if numeric:
        # No TYPE column (`data show` has the schema): at 80 columns it would leave the names
        # no room beside seven figures and a sparkline.
        parts.append(
            _profile_table(
                f"{version.ref}: numeric columns ({p.rows:,} rows)",
                ["COLUMN", "MISSING", "MIN", "P50", "MAX", "MEAN", "STD", "HISTOGRAM"],
                [
                    (
                        c.name,
                        _pct(c),
                        _num(c.min),
                        _num(c.quantiles.get("p50")),
                        _num(c.max),
                        _num(c.mean),
                        _num(c.std),
                        _spark(c),
                    )
                    for c in numeric
                ],
            )
        )
    if times:
        parts.append(
            _profile_table(
                f"{version.ref}: time columns",
                ["COLUMN", "MISSING", "FIRST", "MEDIAN", "LAST", "HISTOGRAM"],
                [
                    (c.name, _pct(c), *_times(c, c.min, c.quantiles.get("p50"), c.max), _spark(c))
                    for c in times
                ],
            )
        )
    if other:
        parts.append(
            _output.table(
                f"{version.ref}: categorical and text columns",
                [
                    _output.ident("COLUMN", min_width=16),
                    "TYPE",
                    "MISSING",
                    "DISTINCT",
                    "TOP VALUES",
                ],
                [
                    (
                        c.name,
                        c.dtype,
                        _pct(c),
                        "> 10,000" if c.distinct is None else f"{c.distinct:,}",
                        ", ".join(
                            f"{k} ({n / max(c.count, 1):.0%})" for k, n in list(c.top.items())[:5]
                        ),
                    )
                    for c in other
                ],
            )
        )
        _whole(parts[-1], "COLUMN", "TYPE", "MISSING", "DISTINCT")  # the top values wrap
    _output.emit(p, json_mode=json, table=Group(*parts))


def _pct(c: ColumnProfile) -> str:
    return f"{c.missing_rate:.1%}" if c.missing else "0"


def _profile_table(title: str, heads: list[str], rows: list[tuple[str, ...]]) -> RenderableType:
    # Names give up width first, down to ten characters; only then is anything cut.
    first = Column(heads[0], min_width=max(len("COLUMN"), min(10, max(len(r[0]) for r in rows))))
    return _narrowing(_output.table(title, [first, *heads[1:]], rows), "COLUMN")


def _times(c: ColumnProfile, *values: float | None) -> list[str]:
    """Dates, with the time of day only when the column spans less than a few days."""
    span = (c.max or 0) - (c.min or 0)
    form = "%Y-%m-%d %H:%M" if c.dtype == "timestamp" and span < 3 * 86_400 else "%Y-%m-%d"
    return ["" if v is None else datetime.fromtimestamp(v, UTC).strftime(form) for v in values]


_BLOCKS = "▁▂▃▄▅▆▇█"


def _spark(c: ColumnProfile) -> str:
    if c.histogram is None or not c.histogram.counts:
        return ""
    edges, counts = c.histogram.edges, c.histogram.counts
    # Merge pairs of bins to fit a narrow terminal; then show density (count per unit of
    # width): the bins are equal-frequency, so raw counts would all look alike.
    while len(counts) > 10:
        counts = [sum(counts[i : i + 2]) for i in range(0, len(counts), 2)]
        edges = edges[::2] if len(edges) % 2 else [*edges[::2], edges[-1]]
    widths = [max(b - a, 1e-12) for a, b in itertools.pairwise(edges)]
    density = [n / w for n, w in zip(counts, widths, strict=False)]
    top = max(density) or 1.0
    return "".join(
        _BLOCKS[min(int(d / top * (len(_BLOCKS) - 1) + 0.5), len(_BLOCKS) - 1)] for d in density
    )


@app.command("diff")
def diff(
    ctx: typer.Context,
    before: Annotated[
        str, typer.Argument(metavar="BEFORE", help="The older version, e.g. loans@2.")
    ],
    after: Annotated[str, typer.Argument(metavar="AFTER", help="The newer version, e.g. loans@3.")],
    top: Annotated[
        int, typer.Option("--top", metavar="N", help="How many shifted columns to show.")
    ] = 10,
    json: _output.JsonFlag = False,
) -> None:
    """Schema changes, row-count change and the largest distribution shifts between versions."""
    from shipyard.data import diff_versions

    with _output.workspace(ctx) as ws:
        result = diff_versions(ws, before, after)
    _output.emit(result, json_mode=json, table=_diff_view(result, top))


def _diff_view(d: DatasetDiff, top: int) -> RenderableType:
    from shipyard.data.diff import LARGE_PSI, NOISE_LIMIT

    change = d.rows_change
    pct = f" ({change / d.rows_before:+.1%})" if d.rows_before else ""
    head = Text.assemble(
        (f"{d.before} → {d.after}", "bold"),
        f"   rows {d.rows_before:,} → {d.rows_after:,}{pct}",
        "   identical content" if d.same_content else "",
    )
    parts: list[RenderableType] = [head]
    if d.schema_changes:
        parts.append(
            _output.table(
                "Schema changes",
                [_output.ident("COLUMN", min_width=16), "CHANGE", "BEFORE", "AFTER"],
                [(c.column, c.change, c.before, c.after) for c in d.schema_changes],
            )
        )
    else:
        parts.append(Text("Schema: no changes."))
    parts.extend(Text(f"warning: {w}", style="yellow") for w in d.warnings)
    shown = d.shifts[:top]
    heads = ["COLUMN", "PSI", "SHIFT", "MEAN", "MISSING", "NEW CATEGORIES"]
    rows = [
        [
            s.column,
            Text(f"{s.psi:.3f}", style="dim" if s.noise > NOISE_LIMIT else ""),
            _verdict(s, LARGE_PSI, NOISE_LIMIT),
            f"{_num(s.mean_before)} → {_num(s.mean_after)}"
            if s.mean_before is not None and s.dtype not in ("timestamp", "date")
            else "",
            f"{s.missing_before:.1%} → {s.missing_after:.1%}",
            ", ".join(s.new_categories),
        ]
        for s in shown
    ]
    # Columns with nothing to say in any row are left out, to leave the rest room.
    empty = {
        "MISSING": not any(s.missing_before or s.missing_after for s in shown),
        "NEW CATEGORIES": not any(s.new_categories for s in shown),
    }
    keep = [i for i, head in enumerate(heads) if not empty.get(head)]
    parts.append(
        Text(
            f"Largest shifts, by PSI over {d.before}'s bins (under {LARGE_PSI / 2} small, to "
            f"{LARGE_PSI} moderate, over {LARGE_PSI} large):",
            style="bold",
        )
    )
    table = _output.table(None, [heads[i] for i in keep], [[row[i] for i in keep] for row in rows])
    parts.append(_whole(table, "COLUMN", "PSI", "SHIFT", "MEAN", "MISSING"))
    return Group(*parts)


def _verdict(s: Shift, large: float, noise_limit: float) -> Text:
    """PSI's usual reading (under 0.1 small, to 0.2 moderate, above large), or `unclear`
    when the samples are too small for it (see the diff's warning)."""
    if s.noise > noise_limit:
        return Text("unclear", style="dim")
    if s.large:
        return Text("large", style="bold red")
    return Text("moderate", style="yellow") if s.psi > large / 2 else Text("small")


@app.command("validate")
def validate(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="FILE", help="The file to check.")],
    against: Annotated[
        str,
        typer.Option(
            "--against",
            metavar="REF",
            help="Dataset version whose contract applies, e.g. loans or loans@3.",
        ),
    ],
    json: _output.JsonFlag = False,
) -> None:
    """Check a file against a dataset's contract; exit 6 if a blocking rule fails."""
    from shipyard.data import blocking_failure, validate_file

    with _output.workspace(ctx) as ws, _output.progress(disable=json) as bar:
        task = bar.add_task(f"validating {source}", total=None)
        report = validate_file(
            ws, source, against=against, progress=lambda n: bar.update(task, completed=n)
        )
    # With --json a failure is the error document alone (it carries the report), so that
    # stdout stays one JSON document.
    if json and report.passed:
        _output.print_json({"passed": report.passed, "report": report})
    elif not json:
        _output.console().print(_report_table(report, title=f"{source} against {against}"))
    failure = blocking_failure(report, str(source), against)
    if failure is not None:
        raise failure
