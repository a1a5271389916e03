"""The tables. Alembic migrations in ``migrations/`` must match this metadata (a test checks)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, Text

metadata = MetaData()

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("at", String(32), nullable=False),
    Column("service", String(64), nullable=False),
    Column("caller", String(256), nullable=False),
    Column("operation", String(128), nullable=False),
    Column("patient", String(64), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("request_id", String(128), nullable=True),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# One row: the head of the audit chain. Appenders lock it, so the chain stays
# linear however many workers write.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

replay_cache = Table(
    "replay_cache",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

feed_cursor = Table(
    "feed_cursor",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
)
