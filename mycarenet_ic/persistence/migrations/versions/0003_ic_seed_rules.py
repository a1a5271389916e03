"""Integrated Care seed rules: the operator's sealed NISS (inclusion and event), why the platform
closed an inclusion (death, stopped project), the patient's applied death.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ic_inclusion", sa.Column("closure_reason", sa.String(32), nullable=True))
    op.add_column("ic_inclusion", sa.Column("operator_sealed", sa.Text, nullable=True))
    op.add_column("ic_event", sa.Column("operator_sealed", sa.Text, nullable=True))
    op.add_column("ic_patient", sa.Column("death_date", sa.Date, nullable=True))
    # Inclusions a death closed before this revision keep their reason.
    op.execute("UPDATE ic_inclusion SET closure_reason = 'death' WHERE closed_by_death")


def downgrade() -> None:
    with op.batch_alter_table("ic_patient") as batch:
        batch.drop_column("death_date")
    with op.batch_alter_table("ic_event") as batch:
        batch.drop_column("operator_sealed")
    with op.batch_alter_table("ic_inclusion") as batch:
        batch.drop_column("operator_sealed")
        batch.drop_column("closure_reason")
