"""agreement and gold: annotations get `is_gold` (one gold per item and type), jobs may be `agreement`, and a
table keeps computed agreement reports until their annotations change

Existing annotations become ordinary (not gold) annotations; existing jobs are untouched.

Revision ID: 5c1e0a7d2b94
Revises: 5d9b7e3c2a61
Create Date: 2026-11-25 01:55:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5c1e0a7d2b94"
down_revision: str | Sequence[str] | None = "5d9b7e3c2a61"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = "kind IN ('import', 'export', 'backup')"
NEW_KINDS = "kind IN ('import', 'export', 'backup', 'agreement')"


def upgrade() -> None:
    # A plain ADD COLUMN, not a batch: SQLite would rebuild the table and trip its offset triggers.
    op.add_column("annotations", sa.Column("is_gold", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index(
        "uq_annotations_gold_item_id_type",
        "annotations",
        ["item_id", "type"],
        unique=True,
        sqlite_where=sa.text("is_gold"),
        postgresql_where=sa.text("is_gold"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_jobs_kind_known"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_jobs_kind_known"), NEW_KINDS)
    op.create_table(
        "agreement_results",
        sa.Column("container_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("options", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=128), nullable=False),
        sa.Column(
            "result", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["containers.id"],
            name=op.f("fk_agreement_results_container_id_containers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("container_id", "type", "options", name=op.f("pk_agreement_results")),
    )


def downgrade() -> None:
    op.drop_table("agreement_results")
    op.execute("DELETE FROM jobs WHERE kind = 'agreement'")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_jobs_kind_known"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_jobs_kind_known"), OLD_KINDS)
    op.drop_index("uq_annotations_gold_item_id_type", table_name="annotations")
    op.drop_column("annotations", "is_gold")
