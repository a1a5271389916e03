"""The tables. Alembic migrations in ``migrations/`` must match this metadata (a test checks)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

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

# -- Integrated Care ------------------------------------------------------------------------------
# The patient is stored only as an HMAC pseudonym (lookups) and a sealed NISS (the audited export
# path); names and birth dates are never stored (they come from the National Register per answer).
ic_inclusion = Table(
    "ic_inclusion",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("patient", String(64), nullable=False, index=True),
    Column("patient_sealed", Text, nullable=False),
    Column("project", String(11), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("declared_start", Date, nullable=False),
    Column("start_date", Date, nullable=False),
    Column("declared_end", Date, nullable=True),
    Column("end_date", Date, nullable=True),
    Column("closed_by_death", Boolean, nullable=False, default=False),
    # Why the platform closed it: "death" (mutation feed) or "project-stopped" (the PSI's end in CoBrHa).
    Column("closure_reason", String(32), nullable=True),
    Column("consent", String(8), nullable=True),
    Column("consent_date", Date, nullable=True),
    Column("provider_nihii", String(11), nullable=True),
    Column("operator", String(64), nullable=False),
    # The operator's NISS (seed 000 annex, data 10), sealed like the patient's; NULL when no person operated.
    Column("operator_sealed", Text, nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One row per patient that has ever had an inclusion: writers lock it, so the "one principal at a
# time" check and the write it guards are one step even with several workers.
ic_patient = Table(
    "ic_patient",
    metadata,
    Column("patient", String(64), primary_key=True),
    # The date of death once the mutation feed told it: no write under this lock may run past it.
    Column("death_date", Date, nullable=True),
)

# Every declaration and modification, in order: what the insurer export reads.
ic_event = Table(
    "ic_event",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("inclusion_id", String(64), nullable=False, index=True),
    Column("patient_sealed", Text, nullable=False),
    Column("snapshot", Text, nullable=False),
    # Who made this change (sealed NISS); NULL for the platform's own (death, stopped project) and demo data.
    Column("operator_sealed", Text, nullable=True),
)

# Idempotency: the first answer to (sender, request id), replayed for a retry.
ic_request = Table(
    "ic_request",
    metadata,
    Column("sender", String(256), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("operation", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("answer", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# -- Research export (seeds 003, 004) ---------------------------------------------------------------
# The access journal (seed 003 art. 2 and 6): who ran which extraction, when, on which data, for what
# purpose; no content (no code, no patient), and when the sample's files were destroyed (art. 4: 30 years
# after its reference year).
research_journal = Table(
    "research_journal",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("extraction", String(32), nullable=False, unique=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("caller", String(256), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("project", String(64), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("reference_year", Integer, nullable=False),
    Column("fields", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("file", Text, nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("destroy_after", Date, nullable=False, index=True),
    Column("purged_at", DateTime(timezone=True), nullable=True),
)

# The web application's sessions (issue 15), in the database so that they survive a restart and every
# worker sees them: keyed by the SHA-256 of the session id (the cookie's value is stored nowhere), what a
# session holds (the identity, the patient looked at) sealed; times in seconds since the epoch.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("csrf", String(64), nullable=False),
    Column("created", Float, nullable=False),
    Column("seen", Float, nullable=False, index=True),
    Column("signed_in", Boolean, nullable=False),
    Column("state", Text, nullable=False),
)

# The sign-in throttle's attempts within its window (older ones are deleted): one row per attempt and key
# (a hash of a keyed pseudonym: no NISS, no address).
web_signin_attempts = Table(
    "web_signin_attempts",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("attempt", String(32), nullable=False, index=True),
    Column("key", String(64), nullable=False),
    Column("at", Float, nullable=False, index=True),
    Index("ix_web_signin_attempts_key_at", "key", "at"),
)
