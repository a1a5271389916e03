"""Server-side sessions of the web application: a random id in a cookie, everything else in the database.

The cookie carries nothing but the id (Secure over HTTPS, HttpOnly, SameSite=Strict). A session holds
its CSRF token and, once signed in, the identity the IdP vouched for; it ends at logout, after
``idle_seconds`` without a request, or after ``max_seconds`` in all. Signing in gives a new id (the id
seen before sign-in is worth nothing after it). Nothing from the National Register is kept in a session.

Sessions live in the platform's database (table ``web_sessions``), so they survive a restart and every
worker of a server sees every session. A row is keyed by the SHA-256 of the id (whoever reads the
database cannot take over a session), what it holds is sealed (it names a NISS), and expired rows are
deleted (at most once a second, and whenever the store is full): at most ``max_sessions`` rows, the oldest
not signed in going first when anyone opens more.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.engine import Connection, Engine

from mycarenet_ic.domain.qualities import CallerIdentity, Quality
from mycarenet_ic.persistence.pseudonym import NissSealer
from mycarenet_ic.persistence.tables import web_sessions

COOKIE = "mycarenet_session"
SWEEP_SECONDS = 1.0   # expired rows deleted at most this often (and whenever the store is full)


@dataclass
class Session:
    id: str
    csrf: str
    created: float
    seen: float
    identity: CallerIdentity | None = None
    profile: str | None = None
    staff_roles: tuple[tuple[str, str], ...] = ()    # (role, PSI NIHII) the AttributeAuthority gave at sign-in
    patient: str | None = None                       # the NISS being looked at (kept here, not in URLs)
    messages: list[str] = field(default_factory=list)  # one-time notices shown on the next page
    stored: str = field(default="", repr=False, compare=False)  # the state as last stored (see save)

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), (token or "").encode())

    def state(self) -> str:
        """What the session holds besides its id, token and times, as stored (before sealing)."""
        ident = self.identity
        return json.dumps({
            "identity": None if ident is None else [ident.quality.value, ident.ssin, ident.nihii, ident.subject,
                                                    ident.fingerprint],
            "profile": self.profile, "staff_roles": [list(r) for r in self.staff_roles], "patient": self.patient,
            "messages": self.messages}, sort_keys=True)

    def restore(self, state: str) -> None:
        values: dict[str, Any] = json.loads(state)
        ident = values["identity"]
        self.identity = None if ident is None else CallerIdentity(Quality(ident[0]), *ident[1:])
        self.profile, self.patient = values["profile"], values["patient"]
        self.staff_roles = tuple((role, psi) for role, psi in values["staff_roles"])
        self.messages = list(values["messages"])
        self.stored = state


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(self, engine: Engine, sealer: NissSealer, idle_seconds: float = 900.0,
                 max_seconds: float = 8 * 3600.0, clock: Callable[[], float] = time.time,
                 max_sessions: int = 10_000) -> None:
        self.engine, self.sealer = engine, sealer
        self.idle_seconds, self.max_seconds, self.clock = idle_seconds, max_seconds, clock
        # Anyone can open a session (the sign-in page does): bounded, the oldest not signed in go first.
        self.max_sessions = max_sessions
        self._lock = threading.Lock()
        self._swept = float("-inf")

    def new(self) -> Session:
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        with self._lock:
            sweep = now - self._swept >= SWEEP_SECONDS
            if sweep:
                self._swept = now
        with self.engine.begin() as conn:
            if sweep:
                self._drop_expired(conn, now)
            if self._count(conn) >= self.max_sessions:
                self._drop_expired(conn, now)
                self._evict(conn, self._count(conn) - self.max_sessions + 1)
            state = session.state()
            conn.execute(web_sessions.insert().values(id_hash=_key(session.id), csrf=session.csrf, created=now,
                                                      seen=now, signed_in=False, state=self.sealer.seal(state)))
        session.stored = state
        return session

    def _evict(self, conn: Connection, count: int) -> None:
        """Room for one more: the oldest sessions not signed in, else the oldest of all."""
        if count <= 0:
            return
        victims = select(web_sessions.c.id_hash).order_by(web_sessions.c.signed_in, web_sessions.c.created)
        ids = list(conn.execute(victims.limit(count)).scalars())
        conn.execute(delete(web_sessions).where(web_sessions.c.id_hash.in_(ids)))

    @staticmethod
    def _count(conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(web_sessions)).scalar_one())

    def __len__(self) -> int:
        with self.engine.connect() as conn:
            return self._count(conn)

    def get(self, session_id: str | None) -> Session | None:
        """The live session of ``session_id`` (its idle clock restarted), None if there is none."""
        if not session_id:
            return None
        now, key = self.clock(), _key(session_id)
        with self.engine.begin() as conn:
            row = conn.execute(select(web_sessions).where(web_sessions.c.id_hash == key)).first()
            if row is None:
                return None
            if now - row.seen > self.idle_seconds or now - row.created > self.max_seconds:
                conn.execute(delete(web_sessions).where(web_sessions.c.id_hash == key))
                return None
            conn.execute(update(web_sessions).where(web_sessions.c.id_hash == key).values(seen=now))
        session = Session(session_id, row.csrf, row.created, now)
        session.restore(self.sealer.open(row.state))
        return session

    def save(self, session: Session) -> None:
        """Store what ``session`` holds now, if it changed (a session ended meanwhile stays ended)."""
        state = session.state()
        if state == session.stored:
            return
        with self.engine.begin() as conn:
            conn.execute(update(web_sessions).where(web_sessions.c.id_hash == _key(session.id)).values(
                state=self.sealer.seal(state), signed_in=session.identity is not None))
        session.stored = state

    def signed_in(self, old: Session, identity: CallerIdentity, profile: str) -> Session:
        """A fresh session (new id, new CSRF token) for ``identity``; ``old`` ends."""
        self.end(old.id)
        session = self.new()
        session.identity, session.profile = identity, profile
        self.save(session)
        return session

    def end(self, session_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(web_sessions).where(web_sessions.c.id_hash == _key(session_id)))

    def _drop_expired(self, conn: Connection, now: float) -> None:
        conn.execute(delete(web_sessions).where(or_(web_sessions.c.seen < now - self.idle_seconds,
                                                    web_sessions.c.created < now - self.max_seconds)))
