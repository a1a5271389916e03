"""Integrated Care: inclusions, patient locks, change events, idempotent requests.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ic_inclusion",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("patient_sealed", sa.Text, nullable=False),
        sa.Column("project", sa.String(11), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("declared_start", sa.Date, nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("declared_end", sa.Date, nullable=True),
        sa.Column("end_date", sa.Date, nullable=True),
        sa.Column("closed_by_death", sa.Boolean, nullable=False),
        sa.Column("consent", sa.String(8), nullable=True),
        sa.Column("consent_date", sa.Date, nullable=True),
        sa.Column("provider_nihii", sa.String(11), nullable=True),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ic_inclusion_patient", "ic_inclusion", ["patient"])
    op.create_index("ix_ic_inclusion_project", "ic_inclusion", ["project"])
    op.create_table("ic_patient", sa.Column("patient", sa.String(64), primary_key=True))
    op.create_table(
        "ic_event",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("inclusion_id", sa.String(64), nullable=False),
        sa.Column("patient_sealed", sa.Text, nullable=False),
        sa.Column("snapshot", sa.Text, nullable=False),
    )
    op.create_index("ix_ic_event_inclusion_id", "ic_event", ["inclusion_id"])
    op.create_table(
        "ic_request",
        sa.Column("sender", sa.String(256), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ic_request")
    op.drop_index("ix_ic_event_inclusion_id", "ic_event")
    op.drop_table("ic_event")
    op.drop_table("ic_patient")
    op.drop_index("ix_ic_inclusion_project", "ic_inclusion")
    op.drop_index("ix_ic_inclusion_patient", "ic_inclusion")
    op.drop_table("ic_inclusion")
