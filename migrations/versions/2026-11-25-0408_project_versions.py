"""project versions: one row per named snapshot of a project (its file is in the export store), and jobs may be
`snapshot` or `restore`

A new table, and a wider check on jobs.kind; existing rows are untouched.

Revision ID: 7c5054c5c3ff
Revises: 5c1e0a7d2b94
Create Date: 2026-11-25 04:08:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7c5054c5c3ff"
down_revision: str | Sequence[str] | None = "5c1e0a7d2b94"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = "kind IN ('import', 'export', 'backup', 'agreement')"
NEW_KINDS = "kind IN ('import', 'export', 'backup', 'agreement', 'snapshot', 'restore')"


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_jobs_kind_known"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_jobs_kind_known"), NEW_KINDS)
    op.create_table(
        "project_versions",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "container_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("snapshot_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("storage_key", sa.String(length=255), nullable=True),
        sa.Column("checksum", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("containers", sa.BigInteger(), nullable=True),
        sa.Column("items", sa.BigInteger(), nullable=True),
        sa.Column("annotations", sa.BigInteger(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_project_versions_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_project_versions_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_versions_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_versions")),
        sa.UniqueConstraint("project_id", "tag", name=op.f("uq_project_versions_project_id_tag")),
    )
    with op.batch_alter_table("project_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_project_versions_project_id_id"), ["project_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("project_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_project_versions_project_id_id"))
    op.drop_table("project_versions")
    op.execute("DELETE FROM jobs WHERE kind IN ('snapshot', 'restore')")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_jobs_kind_known"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_jobs_kind_known"), OLD_KINDS)
