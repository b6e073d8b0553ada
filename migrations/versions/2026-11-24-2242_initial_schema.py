"""initial schema: users, sessions, projects, memberships, containers, items, annotations

A CHECK cannot look at another row, so two triggers keep annotation offsets inside their item's content:
one on annotations (insert, offset change) and one on items (content change).

Revision ID: 9b0ff16de870
Revises:
Create Date: 2026-11-24 22:42:53.656368+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "9b0ff16de870"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("hashed_password", sa.String(length=1024), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("is_superuser", sa.Boolean(), nullable=False),
        sa.Column("is_verified", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("email = lower(email)", name=op.f("ck_users_email_lowercase")),
        sa.CheckConstraint("username = lower(username)", name=op.f("ck_users_username_lowercase")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "auth_sessions",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_auth_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_auth_sessions_token_hash")),
    )
    op.create_index(op.f("ix_auth_sessions_user_id"), "auth_sessions", ["user_id"], unique=False)
    op.create_table(
        "projects",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column(
            "settings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_projects_created_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    op.create_table(
        "containers",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column(
            "item_schema",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("item_count", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("item_count >= 0", name=op.f("ck_containers_item_count_not_negative")),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_containers_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_containers")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_containers_project_id_name")),
    )
    op.create_index(op.f("ix_containers_project_id_id"), "containers", ["project_id", "id"], unique=False)
    op.create_table(
        "memberships",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('viewer', 'annotator', 'reviewer', 'manager', 'owner')",
            name=op.f("ck_memberships_role_known"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_memberships_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_memberships_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project_id", "user_id", name=op.f("pk_memberships")),
    )
    op.create_index(op.f("ix_memberships_user_id_project_id"), "memberships", ["user_id", "project_id"], unique=False)
    op.create_table(
        "items",
        sa.Column("container_id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["containers.id"],
            name=op.f("fk_items_container_id_containers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id", "container_id"],
            ["items.id", "items.container_id"],
            name="fk_items_parent_same_container",
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
        sa.UniqueConstraint("container_id", "external_id", name=op.f("uq_items_container_id_external_id")),
        sa.UniqueConstraint("id", "container_id", name=op.f("uq_items_id_container_id")),
    )
    op.create_index(
        op.f("ix_items_container_id_sequence_id"), "items", ["container_id", "sequence", "id"], unique=False
    )
    op.create_index(op.f("ix_items_parent_id_container_id"), "items", ["parent_id", "container_id"], unique=False)
    op.create_table(
        "annotations",
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("container_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("start_offset", sa.Integer(), nullable=True),
        sa.Column("end_offset", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(start_offset IS NULL AND end_offset IS NULL) OR (start_offset IS NOT NULL AND end_offset IS NOT NULL AND start_offset >= 0 AND end_offset > start_offset)",
            name=op.f("ck_annotations_offsets_valid"),
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_annotations_version_positive")),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_annotations_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["item_id", "container_id"],
            ["items.id", "items.container_id"],
            name="fk_annotations_item_same_container",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
    )
    op.create_index(
        op.f("ix_annotations_container_id_created_by_id"),
        "annotations",
        ["container_id", "created_by", "id"],
        unique=False,
    )
    op.create_index(op.f("ix_annotations_container_id_id"), "annotations", ["container_id", "id"], unique=False)
    op.create_index(
        op.f("ix_annotations_container_id_type_id"),
        "annotations",
        ["container_id", "type", "id"],
        unique=False,
    )
    op.create_index(op.f("ix_annotations_item_id_id"), "annotations", ["item_id", "id"], unique=False)
    _create_offset_triggers()


def downgrade() -> None:
    _drop_offset_triggers()
    op.drop_index(op.f("ix_annotations_item_id_id"), table_name="annotations")
    op.drop_index(op.f("ix_annotations_container_id_type_id"), table_name="annotations")
    op.drop_index(op.f("ix_annotations_container_id_id"), table_name="annotations")
    op.drop_index(op.f("ix_annotations_container_id_created_by_id"), table_name="annotations")
    op.drop_table("annotations")
    op.drop_index(op.f("ix_items_parent_id_container_id"), table_name="items")
    op.drop_index(op.f("ix_items_container_id_sequence_id"), table_name="items")
    op.drop_table("items")
    op.drop_index(op.f("ix_memberships_user_id_project_id"), table_name="memberships")
    op.drop_table("memberships")
    op.drop_index(op.f("ix_containers_project_id_id"), table_name="containers")
    op.drop_table("containers")
    op.drop_table("projects")
    op.drop_index(op.f("ix_auth_sessions_user_id"), table_name="auth_sessions")
    op.drop_table("auth_sessions")
    op.drop_table("users")


_PG_TRIGGERS = [
    """
    CREATE FUNCTION annotations_offsets_within_content() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.end_offset IS NOT NULL
           AND NEW.end_offset > (SELECT char_length(content) FROM items WHERE id = NEW.item_id) THEN
            RAISE EXCEPTION 'annotation % ends at %, past its item''s content', NEW.id, NEW.end_offset
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER annotations_offsets_within_content
    BEFORE INSERT OR UPDATE OF start_offset, end_offset, item_id ON annotations
    FOR EACH ROW EXECUTE FUNCTION annotations_offsets_within_content()
    """,
    """
    CREATE FUNCTION items_content_covers_annotations() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM annotations WHERE item_id = NEW.id AND end_offset > char_length(NEW.content)) THEN
            RAISE EXCEPTION 'item % would end before its annotations do', NEW.id USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER items_content_covers_annotations
    BEFORE UPDATE OF content ON items
    FOR EACH ROW WHEN (OLD.content IS DISTINCT FROM NEW.content)
    EXECUTE FUNCTION items_content_covers_annotations()
    """,
]

_SQLITE_OFFSET_CHECK = (
    "NEW.end_offset IS NOT NULL AND NEW.end_offset > (SELECT length(content) FROM items WHERE id = NEW.item_id)"
)
_SQLITE_TRIGGERS = [
    f"""
    CREATE TRIGGER annotations_offsets_within_content_insert BEFORE INSERT ON annotations
    WHEN {_SQLITE_OFFSET_CHECK}
    BEGIN SELECT RAISE(ABORT, 'annotation ends past its item''s content'); END
    """,
    f"""
    CREATE TRIGGER annotations_offsets_within_content_update
    BEFORE UPDATE OF start_offset, end_offset, item_id ON annotations
    WHEN {_SQLITE_OFFSET_CHECK}
    BEGIN SELECT RAISE(ABORT, 'annotation ends past its item''s content'); END
    """,
    """
    CREATE TRIGGER items_content_covers_annotations BEFORE UPDATE OF content ON items
    WHEN EXISTS (SELECT 1 FROM annotations WHERE item_id = NEW.id AND end_offset > length(NEW.content))
    BEGIN SELECT RAISE(ABORT, 'item would end before its annotations do'); END
    """,
]


def _create_offset_triggers() -> None:
    statements = _PG_TRIGGERS if op.get_bind().dialect.name == "postgresql" else _SQLITE_TRIGGERS
    for statement in statements:
        op.execute(statement)


def _drop_offset_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS items_content_covers_annotations ON items")
        op.execute("DROP TRIGGER IF EXISTS annotations_offsets_within_content ON annotations")
        op.execute("DROP FUNCTION IF EXISTS items_content_covers_annotations()")
        op.execute("DROP FUNCTION IF EXISTS annotations_offsets_within_content()")
    else:
        for name in (
            "items_content_covers_annotations",
            "annotations_offsets_within_content_update",
            "annotations_offsets_within_content_insert",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
