"""Server-side sessions of the web application: a random id in a cookie, everything else here.

The cookie carries nothing but the id (Secure over HTTPS, HttpOnly, SameSite=Strict). A session holds
its CSRF token and, once signed in, the identity the IdP vouched for; it ends at logout, after
``idle_seconds`` without a request, or after ``max_seconds`` in all. Signing in gives a new id (the id
seen before sign-in is worth nothing after it). Nothing from the National Register is kept in a session.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mycarenet_ic.domain.qualities import CallerIdentity

COOKIE = "mycarenet_session"


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

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), (token or "").encode())


class SessionStore:
    def __init__(self, idle_seconds: float = 900.0, max_seconds: float = 8 * 3600.0,
                 clock: Callable[[], float] = time.monotonic, max_sessions: int = 10_000) -> None:
        self.idle_seconds, self.max_seconds, self.clock = idle_seconds, max_seconds, clock
        # Anyone can open a session (the sign-in page does): bounded, the oldest not signed in go first.
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._swept = float("-inf")

    def new(self) -> Session:
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        with self._lock:
            if now - self._swept >= 1.0 or len(self._sessions) >= self.max_sessions:
                self._drop_expired(now)
                self._swept = now
            if len(self._sessions) >= self.max_sessions:
                self._evict()
            self._sessions[session.id] = session
        return session

    def _evict(self) -> None:
        """Room for one more: the oldest session not signed in, else the oldest of all (insertion order)."""
        victim = next((sid for sid, s in self._sessions.items() if s.identity is None), None)
        del self._sessions[victim if victim is not None else next(iter(self._sessions))]

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str | None) -> Session | None:
        """The live session of ``session_id`` (its idle clock restarted), None if there is none."""
        if not session_id:
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[session_id]
                return None
            session.seen = now
            return session

    def signed_in(self, old: Session, identity: CallerIdentity, profile: str) -> Session:
        """A fresh session (new id, new CSRF token) for ``identity``; ``old`` ends."""
        self.end(old.id)
        session = self.new()
        session.identity, session.profile = identity, profile
        return session

    def end(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.seen > self.idle_seconds or now - session.created > self.max_seconds

    def _drop_expired(self, now: float) -> None:
        for sid in [sid for sid, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[sid]
