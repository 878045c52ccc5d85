"""prediction log as Parquet segments (rows of `predictions` moved over)

Revision ID: 0005
Revises: 0004

The rows of the row-per-prediction table become segments in the JSON layout
(`store.logsegments`), a page of up to 20,000 rows of one endpoint each, then the table goes.
A downgrade moves segments back into rows the same way.
"""

import io
import json
import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_PAGE = 20_000


def _predictions() -> sa.TableClause:
    return sa.table(
        "predictions",
        sa.column("id", sa.BigInteger()),
        sa.column("request_id", sa.String()),
        sa.column("endpoint", sa.String()),
        sa.column("version_id", sa.String()),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("latency_ms", sa.Float()),
        sa.column("shadow", sa.Boolean()),
        sa.column("row", sa.Integer()),
        sa.column("inputs", sa.JSON()),
        sa.column("outputs", sa.JSON()),
    )


def _segments() -> sa.TableClause:
    return sa.table(
        "prediction_segments",
        sa.column("id", sa.BigInteger()),
        sa.column("endpoint", sa.String()),
        sa.column("first_at", sa.DateTime(timezone=True)),
        sa.column("last_at", sa.DateTime(timezone=True)),
        sa.column("rows", sa.Integer()),
        sa.column("min_request_id", sa.String()),
        sa.column("max_request_id", sa.String()),
        sa.column("data", sa.LargeBinary()),
    )


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _segment(endpoint: str, rows: list[Any]) -> dict[str, Any]:
    import pyarrow as pa  # only where there are rows to move: `init` stays light
    import pyarrow.parquet as pq

    at = [_aware(r.at) for r in rows]
    table = pa.table(
        {
            "request_id": pa.array([r.request_id for r in rows], pa.string()),
            "row": pa.array([r.row for r in rows], pa.int32()),
            "version_id": pa.array([r.version_id for r in rows], pa.string()),
            "at": pa.array(at, pa.timestamp("us", tz="UTC")),
            "latency_ms": pa.array([float(r.latency_ms) for r in rows], pa.float64()),
            "shadow": pa.array([bool(r.shadow) for r in rows], pa.bool_()),
            "inputs": pa.array([_text(r.inputs) for r in rows], pa.string()),
            "outputs": pa.array([_text(r.outputs) or "{}" for r in rows], pa.string()),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", compression_level=1)
    ids = [r.request_id for r in rows]
    return {
        "endpoint": endpoint,
        "first_at": min(at),
        "last_at": max(at),
        "rows": len(rows),
        "min_request_id": min(ids),
        "max_request_id": max(ids),
        "data": sink.getvalue(),
    }


def upgrade() -> None:
    op.create_table(
        "prediction_segments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("min_request_id", sa.String(length=128), nullable=False),
        sa.Column("max_request_id", sa.String(length=128), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("prediction_segments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_prediction_segments_endpoint_last_at", ["endpoint", "last_at"], unique=False
        )
    bind = op.get_bind()
    old, new = _predictions(), _segments()
    total = bind.execute(sa.select(sa.func.count()).select_from(old)).scalar_one()
    if total:
        logging.getLogger("shipyard.store").warning(
            "moving %s logged predictions into Parquet segments (once; about a minute per "
            "million rows on a small machine)",
            f"{total:,}",
        )
    after = -1
    while True:
        page = bind.execute(
            sa.select(old).where(old.c.id > after).order_by(old.c.id).limit(_PAGE)
        ).all()
        if not page:
            break
        after = page[-1].id
        by_endpoint: dict[str, list[Any]] = defaultdict(list)
        for row in page:
            by_endpoint[row.endpoint].append(row)
        for endpoint, rows in by_endpoint.items():
            bind.execute(sa.insert(new), _segment(endpoint, rows))
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index("ix_predictions_endpoint_at")
        batch_op.drop_index(batch_op.f("ix_predictions_at"))
        batch_op.drop_index(batch_op.f("ix_predictions_request_id"))
    op.drop_table("predictions")


def downgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("shadow", sa.Boolean(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_predictions_at"), ["at"], unique=False)
        batch_op.create_index("ix_predictions_endpoint_at", ["endpoint", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_predictions_request_id"), ["request_id"])
    import pyarrow.parquet as pq

    from shipyard.store.logsegments import decode

    bind = op.get_bind()
    old, new = _predictions(), _segments()

    for segment_id, endpoint in bind.execute(
        sa.select(new.c.id, new.c.endpoint).order_by(new.c.id)
    ).all():
        data = bind.execute(sa.select(new.c.data).where(new.c.id == segment_id)).scalar_one()
        rows = decode(pq.read_table(io.BytesIO(data)))
        at = rows.at.astype("datetime64[us]").tolist()
        bind.execute(
            sa.insert(old),
            [
                {
                    "request_id": rows.request_ids[i],
                    "endpoint": endpoint,
                    "version_id": rows.version_ids[i],
                    "at": at[i].replace(tzinfo=UTC),
                    "latency_ms": float(rows.latency_ms[i]),
                    "shadow": bool(rows.shadow[i]),
                    "row": int(rows.positions[i]),
                    "inputs": rows.input(i),
                    "outputs": rows.output(i),
                }
                for i in range(rows.n)
            ],
        )
    with op.batch_alter_table("prediction_segments", schema=None) as batch_op:
        batch_op.drop_index("ix_prediction_segments_endpoint_last_at")
    op.drop_table("prediction_segments")
