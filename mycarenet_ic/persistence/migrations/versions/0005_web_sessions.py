"""The web application's sessions and sign-in throttle (issue 15), shared by every worker, kept over restarts.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("seen", sa.Float, nullable=False),
        sa.Column("signed_in", sa.Boolean, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
    )
    op.create_index("ix_web_sessions_seen", "web_sessions", ["seen"])
    op.create_table(
        "web_signin_attempts",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("attempt", sa.String(32), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_web_signin_attempts_attempt", "web_signin_attempts", ["attempt"])
    op.create_index("ix_web_signin_attempts_at", "web_signin_attempts", ["at"])
    op.create_index("ix_web_signin_attempts_key_at", "web_signin_attempts", ["key", "at"])


def downgrade() -> None:
    op.drop_index("ix_web_signin_attempts_key_at", "web_signin_attempts")
    op.drop_index("ix_web_signin_attempts_at", "web_signin_attempts")
    op.drop_index("ix_web_signin_attempts_attempt", "web_signin_attempts")
    op.drop_table("web_signin_attempts")
    op.drop_index("ix_web_sessions_seen", "web_sessions")
    op.drop_table("web_sessions")
