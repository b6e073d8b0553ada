"""backups: one row per database backup file (checksum, size, when, which job)

A new table only; no existing table or row is touched.

Revision ID: d7d36adf5936
Revises: 9fef43e14e30
Create Date: 2026-11-25 00:06:46.668277+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d7d36adf5936"
down_revision: str | Sequence[str] | None = "9fef43e14e30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backups",
        sa.Column("backend", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("backend IN ('postgresql', 'sqlite')", name=op.f("ck_backups_backend_known")),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_backups_size_not_negative")),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_backups_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_backups_job_id_jobs"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backups")),
        sa.UniqueConstraint("filename", name=op.f("uq_backups_filename")),
    )
    with op.batch_alter_table("backups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_backups_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("backups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backups_created_at"))

    op.drop_table("backups")
