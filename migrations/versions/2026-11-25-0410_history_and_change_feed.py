"""history and change feed: annotation revisions, the per-project change feed, container item schema versions,
the schema version items were validated against, and the project setting that makes If-Match mandatory

Existing annotations get one revision each with their current content (`created` at version 1, `updated`
above it, by their author); existing containers get their current item schema as version 1, and their items
version 1. The change feed starts empty: it records changes from this revision on.

Revision ID: 594fae559e75
Revises: 7c5054c5c3ff
Create Date: 2026-11-25 04:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "594fae559e75"
down_revision: str | Sequence[str] | None = "7c5054c5c3ff"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # Plain ADD COLUMNs, not batches: SQLite would rebuild items and trip its offset triggers.
    op.add_column("projects", sa.Column("require_if_match", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("containers", sa.Column("item_schema_version", sa.Integer(), server_default="1", nullable=False))
    op.add_column("items", sa.Column("schema_version", sa.Integer(), server_default="1", nullable=False))
    op.create_table(
        "container_schema_versions",
        sa.Column("container_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("item_schema", JSON, nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["containers.id"],
            name=op.f("fk_container_schema_versions_container_id_containers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_container_schema_versions_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("container_id", "version", name=op.f("pk_container_schema_versions")),
    )
    op.create_table(
        "annotation_revisions",
        sa.Column("annotation_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("container_id", sa.Uuid(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("start_offset", sa.Integer(), nullable=True),
        sa.Column("end_offset", sa.Integer(), nullable=True),
        sa.Column("is_gold", sa.Boolean(), nullable=False),
        sa.Column("reverted_from", sa.Integer(), nullable=True),
        sa.Column("changed_by", sa.Uuid(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "action IN ('created', 'updated', 'reverted', 'deleted')", name=op.f("ck_annotation_revisions_action_known")
        ),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["containers.id"],
            name=op.f("fk_annotation_revisions_container_id_containers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("annotation_id", "version", name=op.f("pk_annotation_revisions")),
    )
    op.create_index(
        op.f("ix_annotation_revisions_container_id"), "annotation_revisions", ["container_id"], unique=False
    )
    op.create_table(
        "changes",
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("resource_type", sa.String(length=16), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("container_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("changed_by", sa.Uuid(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("action IN ('created', 'updated', 'deleted')", name=op.f("ck_changes_action_known")),
        sa.CheckConstraint(
            "resource_type IN ('container', 'item', 'annotation')", name=op.f("ck_changes_resource_known")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_changes_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_changes")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_changes_project_id_txid_position"), "changes", ["project_id", "txid", "position"], unique=False
    )
    op.execute(
        "INSERT INTO container_schema_versions (container_id, version, item_schema, created_by, created_at) "
        "SELECT id, 1, item_schema, NULL, updated_at FROM containers"
    )
    op.execute(
        "INSERT INTO annotation_revisions (annotation_id, version, container_id, item_id, action, type, data, "
        "start_offset, end_offset, is_gold, reverted_from, changed_by, changed_at) "
        "SELECT id, version, container_id, item_id, CASE WHEN version = 1 THEN 'created' ELSE 'updated' END, type, "
        "data, start_offset, end_offset, is_gold, NULL, created_by, updated_at FROM annotations"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_changes_project_id_txid_position"), table_name="changes")
    op.drop_table("changes")
    op.drop_index(op.f("ix_annotation_revisions_container_id"), table_name="annotation_revisions")
    op.drop_table("annotation_revisions")
    op.drop_table("container_schema_versions")
    op.drop_column("items", "schema_version")
    op.drop_column("containers", "item_schema_version")
    op.drop_column("projects", "require_if_match")
