"""runs.heartbeat_at: when a run's writer last showed its process alive

Revision ID: 0006
Revises: 0005

A `running` run whose heartbeat is older than the bound in `train.tracking` is reported (and,
by the next writer, recorded) as `killed`. Runs from before this migration have no heartbeat
and keep their status as stored. A downgrade records `killed` runs as `failed`.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Older code knows no `killed` status; `failed` is what it would have called such a run.
    op.execute("UPDATE runs SET status = 'failed' WHERE status = 'killed'")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
