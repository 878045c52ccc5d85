"""Ingest: source → cleaned, validated, profiled, content-addressed Parquet version.

The pipeline streams the source once into a staged Parquet file in the workspace's scratch
space, checking the declared contract as it goes; steps that need the whole data set get a
second pass. Only when validation passes (or `allow=True`) is the file put in the artifact
store and the version row and its audit event committed, in one transaction: a failed ingest
stores nothing. Re-ingesting identical data returns the existing version.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shipyard.core.errors import Conflict, Invalid, ValidationFailed
from shipyard.core.records import (
    CleaningStep,
    DatasetSchema,
    DatasetVersion,
    DType,
    Lineage,
    Profile,
    ValidationReport,
    check_name,
)
from shipyard.core.spec import ColumnContract, DataSpec, SqlSource
from shipyard.data import clean
from shipyard.data.profile import ProfileBuilder, profile_parquet
from shipyard.data.schema import infer_schema, ingest_rules, next_contract
from shipyard.data.sources import Source, TypeWiden, open_source, prefetch
from shipyard.data.staging import staging
from shipyard.data.types import ARROW, dtype_of, normalise, storage_type
from shipyard.data.validation import Validator
from shipyard.data.versions import get_version, next_version, to_record
from shipyard.store import audit
from shipyard.store.artifacts import sha256_file
from shipyard.store.tables import DatasetRow, DatasetVersionRow
from shipyard.store.workspace import Workspace

Progress = Callable[[int], None]
T = TypeVar("T")
ROW_GROUP = 131_072


@dataclass(frozen=True)
class IngestResult:
    version: DatasetVersion
    created: bool


@dataclass(frozen=True)
class Roles:
    target: str | None = None
    id: str | None = None
    time: str | None = None
    sensitive: tuple[str, ...] = ()

    def required(self) -> list[str]:
        return [c for c in (self.target, self.id, self.time, *self.sensitive) if c]


def ingest(
    ws: Workspace,
    source: str | Path | Source,
    *,
    name: str,
    target: str | None = None,
    id: str | None = None,
    time: str | None = None,
    sensitive: Sequence[str] = (),
    contract: Mapping[str, ColumnContract] | None = None,
    steps: Sequence[CleaningStep] = (),
    allow: bool = False,
    progress: Progress | None = None,
    parent: str | None = None,
    label: str | None = None,
) -> IngestResult:
    """Ingest a file or query as the next version of dataset `name`.

    `parent` (a dataset version id) and `label` (how the lineage names the source) are for data
    Shipyard assembled itself, such as a retrain's training set.

    >>> ingest(ws, "loans.csv", name="loans", target="default", id="loan_id")
    """
    check_name(name, what="dataset name")
    clean.check_steps(steps)
    src = source if isinstance(source, Source) else open_source(source)
    roles = _roles(ws, name, Roles(target, id, time, tuple(sensitive)))
    contract = dict(contract or {})
    source_digest = sha256_file(src.uri) if src.format != "sql" else None
    declared = {c: v.model_dump(mode="json", exclude_defaults=True) for c, v in contract.items()}
    same = _same_source(ws, name, source_digest, steps, declared)
    if same is not None:
        return IngestResult(same, created=False)
    previous = _previous_schema(ws, name)
    with staging(ws.scratch) as stage:
        staged, steps_done, report, schema_types, builder = _stream(
            src, stage, roles, contract, steps, progress, previous
        )
        profile = builder.finish()
        # The declared rules of the dataset hold for every later version (that has the column).
        contract = next_contract(previous, list(schema_types), contract)
        schema = infer_schema(
            profile,
            target=roles.target,
            id_column=roles.id,
            time_column=roles.time,
            sensitive=roles.sensitive,
            contract=contract,
        )
        # A new version without a role column fails `present` like any column, but no --allow
        # stores it: the dataset's target, id, time and sensitive columns are what it is for.
        roleless = [c for c in roles.required() if c not in schema_types]
        if (not report.passed and not allow) or roleless:
            raise ValidationFailed(
                _failure_message(name, src.label, report, roleless),
                details={"report": report.model_dump(mode="json")},
            )
        digest = sha256_file(staged)
        existing = _existing(ws, name, digest)
        if existing is not None:
            return IngestResult(existing, created=False)
        lineage = Lineage(
            source=label or src.label,  # the URI, with any database password masked
            parent=parent,
            format=src.format,
            query=src.query,
            source_digest=source_digest,
            steps=steps_done,
            contract=declared,
        )
        ws.artifacts.put_file(staged, digest, move=True)
        version = _commit(ws, name, roles, digest, schema, profile, report, lineage, schema_types)
        return IngestResult(version, created=True)


def ingest_spec(
    ws: Workspace,
    spec: DataSpec,
    *,
    name: str,
    base_dir: Path,
    allow: bool = False,
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest what a project spec's `data:` section declares."""
    if spec.source is None:
        raise Invalid(
            "shipyard.yaml's data section names no source to ingest (data.source is not set): "
            "set data.source to a file or {sql: ..., url: ...}, or give the file to ingest."
        )
    if isinstance(spec.source, SqlSource):
        src = open_source(spec.source.url, sql=spec.source.sql)
    else:
        path = Path(spec.source)
        src = open_source(path if path.is_absolute() else base_dir / path)
    return ingest(
        ws,
        src,
        name=name,
        target=spec.target,
        id=spec.id,
        time=spec.time,
        sensitive=spec.sensitive,
        contract=spec.contract,
        steps=spec.clean,
        allow=allow,
        progress=progress,
    )


# -- the streaming pass ---------------------------------------------------------------------------


def _stream(
    src: Source,
    stage: Path,
    roles: Roles,
    contract: dict[str, ColumnContract],
    steps: Sequence[CleaningStep],
    progress: Progress | None,
    previous: DatasetSchema | None,
) -> tuple[Path, list[CleaningStep], ValidationReport, dict[str, DType], ProfileBuilder]:
    declared_types = {c: ARROW[v.type] for c, v in contract.items() if v.type}
    src.column_types = {
        **_text_columns(src, previous),
        **declared_types,
        **clean.read_types(steps),
        **src.column_types,
    }
    return _widening(
        src, lambda: _stream_once(src, stage, roles, contract, steps, progress, previous)
    )


def _text_columns(src: Source, schema: DatasetSchema | None) -> dict[str, pa.DataType]:
    """A CSV's columns that were text in a stored version are read as text again: codes that
    all look like numbers this time are not a type change. CSV only, the one format whose types
    are guessed from text (a JSON reader told a column's type adds it, all missing, when the
    file lacks it, which would hide a missing column from `present`)."""
    if schema is None or src.format != "csv":
        return {}
    return {c.name: pa.string() for c in schema.columns if c.dtype == "string"}


def _widening(src: Source, read: Callable[[], T]) -> T:
    """Run a full read of `src`, re-running it with a wider column type each time a later
    block needs one (ints then floats, a column empty at first)."""
    for _attempt in range(64):
        try:
            return read()
        except TypeWiden as widen:
            src.column_types[widen.column] = widen.dtype
    raise Invalid(
        f"{src.label}: column types kept changing while reading; declare them in the contract."
    )


def _stream_once(
    src: Source,
    stage: Path,
    roles: Roles,
    contract: dict[str, ColumnContract],
    steps: Sequence[CleaningStep],
    progress: Progress | None,
    previous: DatasetSchema | None,
) -> tuple[Path, list[CleaningStep], ValidationReport, dict[str, DType], ProfileBuilder]:
    """Read, clean and stage the data. Validation and profiling see the final rows: here
    when every step is row-local, else in the second pass that the whole-data steps need."""
    # Counted by position in `steps`: two equal steps (a spec's `trim` and `--trim`) are two.
    streaming = [(i, s) for i, s in enumerate(steps) if not clean.is_global(s)]
    global_steps = [(i, s) for i, s in enumerate(steps) if clean.is_global(s)]
    changed = dict.fromkeys(range(len(steps)), 0)
    raw = stage / "stream.parquet"
    writer: _BackgroundWriter | None = None
    validator: Validator | None = None
    builder: ProfileBuilder | None = None
    schema: pa.Schema | None = None
    rows = 0
    try:
        for batch in prefetch(src.batches()):
            for position, step in streaming:
                batch, n = clean.apply_streaming(step, batch)
                changed[position] += n
            if schema is None:
                schema = _stored_schema(batch.schema, src, steps)
                _check_columns(src, schema.names, roles, contract, steps, previous is not None)
                types = {f.name: dtype_of(f.type) for f in schema}
                rules = _with_roles(ingest_rules(schema.names, types, contract, previous), roles)
                validator = Validator(rules)
                builder = ProfileBuilder(schema)
                writer = _BackgroundWriter(raw, schema)
            _check_widen(batch, schema, src)
            batch = normalise(batch, schema)
            assert validator is not None and writer is not None and builder is not None
            writer.write(batch)
            if not global_steps:
                validator.update(batch)
                builder.update(batch)
            rows += batch.num_rows
            if progress:
                progress(rows)
    finally:
        if writer is not None:
            writer.close()
    if schema is None or validator is None or builder is None:
        raise Invalid(f"{src.label} has no rows and no columns; nothing to ingest.")
    if rows == 0:
        if src.format == "sql":
            raise Invalid(f"{src.label}: the query returned no rows; nothing to ingest.")
        raise Invalid(f"{src.label} has a header but no rows; nothing to ingest.")
    staged = raw
    if global_steps:
        validator = Validator(validator.schema)
        builder = ProfileBuilder(schema)
        staged = _second_pass(
            raw, stage / "clean.parquet", global_steps, changed, validator, builder
        )
    done = [s.model_copy(update={"rows_changed": changed[i]}) for i, s in enumerate(steps)]
    types = {f.name: dtype_of(f.type) for f in schema}
    return staged, done, validator.report(), types, builder


def _with_roles(schema: DatasetSchema, roles: Roles) -> DatasetSchema:
    """The structural rules: the id is present and unique, the target is present."""
    columns = []
    for col in schema.columns:
        if col.name == roles.id:
            col = col.model_copy(
                update={
                    "unique": True,
                    "nullable": False,
                    "severity": {**col.severity, "unique": "error", "nullable": "error"},
                }
            )
        elif col.name == roles.target:
            col = col.model_copy(
                update={"nullable": False, "severity": {**col.severity, "nullable": "error"}}
            )
        columns.append(col)
    return DatasetSchema(columns=columns)


class _BackgroundWriter:
    """Parquet writes on a second thread, so reading the next block overlaps compressing this
    one (both release the GIL). Batches are gathered into row groups of `ROW_GROUP` rows; at
    most one write is in flight, and its error surfaces on the next call."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._writer = pq.ParquetWriter(path, schema, compression="snappy")
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="shipyard-parquet")
        self._pending: Future[None] | None = None
        self._buffer: list[pa.RecordBatch] = []
        self._rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._buffer.append(batch)
        self._rows += batch.num_rows
        if self._rows >= ROW_GROUP:
            self._submit()

    def _submit(self) -> None:
        if self._pending is not None:
            self._pending.result()
        table = pa.Table.from_batches(self._buffer)
        self._buffer, self._rows = [], 0
        self._pending = self._pool.submit(self._writer.write_table, table, row_group_size=ROW_GROUP)

    def close(self) -> None:
        try:
            if self._buffer:
                self._submit()
            if self._pending is not None:
                self._pending.result()
        finally:
            self._pool.shutdown(wait=True)
            self._writer.close()


def _stored_schema(schema: pa.Schema, src: Source, steps: Sequence[CleaningStep]) -> pa.Schema:
    """Read-type overrides apply, except to columns a `coerce` step has already typed."""
    coerced = {c for s in steps if s.op == "coerce" for c in s.columns}
    return pa.schema(
        [
            pa.field(
                f.name,
                storage_type(f.type if f.name in coerced else src.column_types.get(f.name, f.type)),
            )
            for f in schema
        ]
    )


def _check_widen(batch: pa.RecordBatch, schema: pa.Schema, src: Source) -> None:
    """A column first seen all-missing (or as integers) may need a wider type later."""
    for f in schema:
        actual = batch.schema.field(f.name).type
        if f.name in src.column_types or pa.types.is_null(actual):
            continue
        stored = dtype_of(f.type)
        now = dtype_of(actual)
        if stored == now or (stored == "float64" and now == "int64"):
            continue
        if stored == "int64" and now == "float64":
            raise TypeWiden(f.name, pa.float64())
        if stored == "string" and batch.num_rows:  # first seen all-missing, typed now
            raise TypeWiden(f.name, actual)
        raise Invalid(
            f"{src.label}: column {f.name!r} has mixed types: first {stored}, later {now}. Declare "
            f"its type in the contract or coerce it with `--coerce {f.name}`."
        )


def _check_columns(
    src: Source,
    names: list[str],
    roles: Roles,
    contract: Mapping[str, ColumnContract],
    steps: Sequence[CleaningStep],
    inherited: bool,
) -> None:
    """Names the ingest was given that the data lacks. Roles a new version inherits are left
    to validation (`present`, with the report), as `validate` reports them."""
    for label, column in (("target", roles.target), ("id", roles.id), ("time", roles.time)):
        if column and column not in names and not inherited:
            raise Invalid(
                f"{src.label}: the {label} column {column!r} is not in the data; the columns are "
                f"{names}. Fix --{label} (or data.{label} in shipyard.yaml)."
            )
    for column in roles.sensitive:
        if column not in names and not inherited:
            raise Invalid(f"{src.label}: sensitive column {column!r} is not in the data {names}.")
    unknown = sorted(set(contract) - set(names))
    if unknown:
        raise Invalid(
            f"{src.label}: the contract names column(s) {unknown} that the data does not have; "
            f"the columns are {names}."
        )
    for step in steps:
        missing = [c for c in step.columns if c not in names]
        if missing:
            raise Invalid(
                f"cleaning step {step.op!r} names column(s) {missing} not in the data {names}."
            )


def _second_pass(
    raw: Path,
    out: Path,
    global_steps: list[tuple[int, CleaningStep]],
    changed: dict[int, int],
    validator: Validator,
    builder: ProfileBuilder,
) -> Path:
    """The whole-data steps (`(position in steps, step)`) over the staged file."""
    fills: dict[int, dict[str, object]] = {}
    if any(s.op == "fill" for _, s in global_steps):
        stats = profile_parquet(str(raw))
        for position, step in global_steps:
            if step.op == "fill":
                columns = step.columns or [c.name for c in stats.columns if c.missing]
                fills[position] = {c: clean.fill_value(step, c, stats) for c in columns}
    dedupers = {i: clean.Deduper(s.columns) for i, s in global_steps if s.op == "dedupe"}
    file = pq.ParquetFile(raw)
    with pq.ParquetWriter(out, file.schema_arrow, compression="snappy") as writer:
        for batch in file.iter_batches(batch_size=ROW_GROUP):
            for position, step in global_steps:
                if step.op == "dedupe":
                    batch, n = dedupers[position](batch)
                else:
                    values = {c: v for c, v in fills[position].items() if v is not None}
                    n = clean.rows_missing(batch, list(values))
                    for column, value in values.items():
                        one = CleaningStep(op="fill", columns=[column], params={"value": value})
                        batch, _ = clean.apply_streaming(one, batch)
                changed[position] += n
            validator.update(batch)
            builder.update(batch)
            writer.write_batch(batch, row_group_size=ROW_GROUP)
    return out


def _failure_message(
    name: str, uri: str, report: ValidationReport, roleless: Sequence[str] = ()
) -> str:
    lines = [
        f"{uri} breaks {len(report.errors)} blocking rule(s) of dataset {name!r}; "
        "nothing was stored:"
    ]
    for v in report.errors[:10]:
        examples = ", ".join(
            f"row {e['row']}: {e.get('value')!r}"
            if "row" in e
            else f"{e.get('value')!r} ×{e.get('rows')}"
            for e in v.examples
        )
        lines.append(
            f"  - {v.column}: {v.message} ({v.count:,} row{'s' if v.count != 1 else ''}"
            + (f"; e.g. {examples})" if examples else ")")
        )
    if roleless:
        lines.append(
            f"{', '.join(map(repr, roleless))}: the dataset's role column(s) must be in every "
            "version, --allow or not: restore them, or ingest under a new dataset name."
        )
    elif any(v.rule == "present" for v in report.errors):
        lines.append(
            f"A new version of {name!r} keeps every column of the last one: restore the "
            "column(s), ingest under a new dataset name, or pass --allow to store it with the "
            "violations recorded."
        )
    else:
        lines.append(
            "Fix the data, relax the contract, or pass --allow to store it with the violations "
            "recorded."
        )
    return "\n".join(lines)


# -- the store ----------------------------------------------------------------------------------


def _roles(ws: Workspace, name: str, given: Roles) -> Roles:
    """Roles are fixed at a dataset's first version; later ingests inherit or must agree."""
    with ws.db.read() as s:
        row = s.get(DatasetRow, name)
    if row is None:
        return given
    stored = Roles(row.target, row.id_column, row.time_column, tuple(row.sensitive))
    for label, new, old in (
        ("target", given.target, stored.target),
        ("id", given.id, stored.id),
        ("time", given.time, stored.time),
    ):
        if new is not None and new != old:
            raise Conflict(
                f"dataset {name!r} has {label} column {old!r}; this ingest says {new!r}. Keep "
                f"--{label} {old} (or omit it), or ingest under a new dataset name."
            )
    return stored


def _same_source(
    ws: Workspace,
    name: str,
    source_digest: str | None,
    steps: Sequence[CleaningStep],
    contract: dict[str, Any],
) -> DatasetVersion | None:
    """A version made from the same source bytes, cleaning and contract: nothing to redo."""
    if source_digest is None:
        return None
    wanted = [s.model_dump(exclude={"rows_changed"}) for s in steps]
    with ws.db.read() as s:
        rows = s.scalars(select(DatasetVersionRow).where(DatasetVersionRow.dataset == name))
        for row in rows:
            lineage = Lineage.model_validate(row.lineage)
            done = [st.model_dump(exclude={"rows_changed"}) for st in lineage.steps]
            same_contract = lineage.contract == contract
            if lineage.source_digest == source_digest and done == wanted and same_contract:
                return to_record(row)
    return None


def _previous_schema(ws: Workspace, name: str) -> DatasetSchema | None:
    with ws.db.read() as s:
        row = s.scalars(
            select(DatasetVersionRow)
            .where(DatasetVersionRow.dataset == name)
            .order_by(DatasetVersionRow.version.desc())
            .limit(1)
        ).first()
        return DatasetSchema.model_validate(row.schema) if row else None


def _existing(ws: Workspace, name: str, digest: str) -> DatasetVersion | None:
    with ws.db.read() as s:
        row = s.scalars(
            select(DatasetVersionRow).where(
                DatasetVersionRow.dataset == name, DatasetVersionRow.content_hash == digest
            )
        ).first()
        return to_record(row) if row else None


def _commit(
    ws: Workspace,
    name: str,
    roles: Roles,
    digest: str,
    schema: DatasetSchema,
    profile: Profile,
    report: ValidationReport,
    lineage: Lineage,
    types: dict[str, DType],
) -> DatasetVersion:
    now = datetime.now(UTC)
    try:
        with ws.db.write() as s:
            if s.get(DatasetRow, name) is None:
                s.add(
                    DatasetRow(
                        name=name,
                        target=roles.target,
                        id_column=roles.id,
                        time_column=roles.time,
                        sensitive=list(roles.sensitive),
                        created_at=now,
                        created_by=ws.actor,
                    )
                )
                s.flush()
            version = next_version(s, name)
            parent = s.scalars(
                select(DatasetVersionRow.id).where(
                    DatasetVersionRow.dataset == name, DatasetVersionRow.version == version - 1
                )
            ).first()
            lineage = lineage.model_copy(update={"parent": parent})
            row = DatasetVersionRow(
                id="dsv_" + secrets.token_hex(10),
                dataset=name,
                version=version,
                content_hash=digest,
                artifact=digest,
                rows=profile.rows,
                columns=len(types),
                schema=schema.model_dump(mode="json"),
                profile=profile.model_dump(mode="json"),
                validation=report.model_dump(mode="json"),
                lineage=lineage.model_dump(mode="json"),
                parent_id=parent,
                created_at=now,
                created_by=ws.actor,
            )
            s.add(row)
            s.flush()
            audit.append(
                s,
                actor=ws.actor,
                action="dataset.ingest",
                object_type="dataset_version",
                object_id=row.id,
                before=parent,
                after=row.id,
                details={
                    "ref": f"{name}@{version}",
                    "rows": row.rows,
                    "content_hash": digest,
                    "source": lineage.source,
                    "violations": len(report.violations),
                },
            )
            return to_record(row)
    except IntegrityError as exc:
        raise Conflict(
            f"another ingest of dataset {name!r} committed at the same time; run the ingest again."
        ) from exc


def blocking_failure(report: ValidationReport, what: str, against: str) -> ValidationFailed | None:
    """The error a check of `what` against `against` fails with when a blocking rule broke
    (None when it passed): the one failure decision of `validate` in the CLI and the API."""
    if report.passed:
        return None
    return ValidationFailed(
        f"{what} breaks {len(report.errors)} blocking rule(s) of {against}: "
        + "; ".join(
            f"{v.column}: {v.message} ({v.count:,} row{'s' if v.count != 1 else ''})"
            for v in report.errors[:5]
        ),
        details={"report": report.model_dump(mode="json")},
    )


def validate_file(
    ws: Workspace,
    source: str | Path | Source,
    *,
    against: str,
    progress: Progress | None = None,
) -> ValidationReport:
    """Check a file against a stored version's schema; inferred rules warn, declared ones block."""
    version = get_version(ws, against)
    src = source if isinstance(source, Source) else open_source(source)
    src.lenient = True
    src.column_types = _text_columns(src, version.schema_)

    def read() -> ValidationReport:
        validator = Validator(version.schema_)
        rows = 0
        for batch in src.batches():
            validator.update(batch)
            rows += batch.num_rows
            if progress:
                progress(rows)
        return validator.report()

    return _widening(src, read)
