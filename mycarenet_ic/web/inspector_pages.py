"""The inspector in the browser (issue 16 item 1): the recorded exchanges for the sandbox's operator.

The operator signs in with the data directory's admin token (the scenario admin's, ``secrets/admin.token``;
compared in constant time) into an **operator session** of its own (:class:`OperatorSessions`: its own store,
its own cookie ``mycarenet_operator``, HttpOnly, SameSite=Strict, the inspector's path only). A person signed in
through the IdP gets nothing here: the pages look at the operator session alone, and a person's session id is
no operator's. The sign-in form carries the application's CSRF token (the browser's web session, as every form
of the application). Sent to the sign-in from one of its pages (a fault's ``X-Sandbox-Reason`` link), the
operator lands on that page afterwards: a ``next`` that is only ever a path of the inspector itself
(:func:`mycarenet_ic.web.app.own_path`, the language switch's check), else the list.

The pages read through :mod:`mycarenet_ic.inspector.views`, as ``mycarenet-ic inspect`` does: a list with
filters by caller, service, outcome and time (paged, server-rendered: no JavaScript), one exchange (request,
answer, the true reason, the signature's verdict, the decoded blobs, pretty-printed and escaped), the same as a
zip of files, a diff of two. Every sign-in and every read is audited (service ``web``, ``Inspect…``) as the
command line's reads are.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, redirect, render_template, request, url_for

from mycarenet_ic.config import Settings
from mycarenet_ic.inspector import views
from mycarenet_ic.inspector.store import FILE_NAME, Filters, InspectorStore
from mycarenet_ic.persistence.db import owner_only_sqlite_file
from mycarenet_ic.services.ports import AuditEntry, AuditLog
from mycarenet_ic.web.app import own_path
from mycarenet_ic.web.i18n import N_

OPERATOR_COOKIE = "mycarenet_operator"
AUDIT_SERVICE = "web"
OPERATOR = "operator:web"   # the audit's caller for the operator signed in here (the CLI's: operator:<user>)
PAGE_SIZE = 25
OUTCOMES = ("OK", "DENIED", "ERROR")
MAX_FIELD = 256

TOKEN_REFUSED = N_("That is not this sandbox's admin token.")
INSPECTOR_OFF = N_("The inspector records nothing here: start the sandbox with it on (the default), or a "
                   "deployment with MYCARENET_INSPECTOR=1.")
NO_EXCHANGE = N_("There is no such exchange: the inspector keeps only the newest ones, for a limited time.")
BAD_FILTER = N_("A filter is not valid: times are written YYYY-MM-DDTHH:MM (UTC) or as an age such as 10m or 2h.")
PICK_TWO = N_("Choose exactly two exchanges to compare.")
VERDICTS = {"verified": N_("verified"), "refused": N_("refused"), "not checked": N_("not checked")}

bp = Blueprint("inspector", __name__, url_prefix="/inspector")


@dataclass
class OperatorSession:
    id: str
    created: float
    seen: float


class OperatorSessions:
    """The operators signed in, kept in ``operator-sessions.sqlite3`` of the data directory (0600), so every
    worker of ``serve`` knows them and a restart keeps them; keyed by the SHA-256 of the cookie's random id (the
    file holds no usable id); ended after ``idle_seconds`` without a request or ``max_seconds`` in all; at most
    ``max_sessions`` (the oldest goes first)."""

    FILE = "operator-sessions.sqlite3"

    def __init__(self, data_dir: Path, idle_seconds: float = 900.0, max_seconds: float = 8 * 3600.0,
                 max_sessions: int = 100, clock: Callable[[], float] = time.time) -> None:
        self.idle_seconds, self.max_seconds, self.max_sessions, self.clock = (idle_seconds, max_seconds,
                                                                               max_sessions, clock)
        self.path = data_dir / self.FILE
        owner_only_sqlite_file(f"sqlite:///{self.path}")
        with self._writing() as db:
            db.execute("CREATE TABLE IF NOT EXISTS operator_session "
                       "(id_hash TEXT PRIMARY KEY, created REAL NOT NULL, seen REAL NOT NULL)")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on a connection of its own (each call: nothing to share across a fork)."""
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    @staticmethod
    def _key(session_id: str) -> str:
        return hashlib.sha256(session_id.encode()).hexdigest()

    def new(self) -> OperatorSession:
        now = self.clock()
        session = OperatorSession(secrets.token_urlsafe(32), now, now)
        with self._writing() as db:
            db.execute("DELETE FROM operator_session WHERE id_hash IN (SELECT id_hash FROM operator_session "
                       "ORDER BY created DESC, rowid DESC LIMIT -1 OFFSET ?)", (self.max_sessions - 1,))
            db.execute("INSERT INTO operator_session VALUES (?, ?, ?)", (self._key(session.id), now, now))
        return session

    def get(self, session_id: str | None) -> OperatorSession | None:
        if not session_id:
            return None
        now, key = self.clock(), self._key(session_id)
        with self._writing() as db:
            row = db.execute("SELECT created, seen FROM operator_session WHERE id_hash = ?", (key,)).fetchone()
            if row is None:
                return None
            created, seen = row
            if now - seen > self.idle_seconds or now - created > self.max_seconds:
                db.execute("DELETE FROM operator_session WHERE id_hash = ?", (key,))
                return None
            db.execute("UPDATE operator_session SET seen = ? WHERE id_hash = ?", (now, key))
        return OperatorSession(session_id, created, now)

    def end(self, session_id: str) -> None:
        with self._writing() as db:
            db.execute("DELETE FROM operator_session WHERE id_hash = ?", (self._key(session_id),))


@dataclass
class InspectorPages:
    """What the inspector's pages share: the settings, the audit, the operator sessions, the store."""

    settings: Settings
    audit: AuditLog
    sessions: OperatorSessions
    page_size: int = PAGE_SIZE
    _store: InspectorStore | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def token_ok(self, given: str) -> bool:
        from mycarenet_ic.stubs.admin import admin_token

        return hmac.compare_digest(given.strip().encode(), admin_token(self.settings.data_dir).encode())

    def store(self) -> InspectorStore | None:
        """The data directory's inspector store; None when nothing is recorded (and none is made then)."""
        with self._lock:
            if self._store is None and (self.settings.inspector or (self.settings.data_dir / FILE_NAME).is_file()):
                self._store = InspectorStore.of(self.settings)
            return self._store

    def audited(self, operation: str, detail: str, outcome: str = "OK") -> None:
        self.audit.append(AuditEntry(AUDIT_SERVICE, operation, caller=OPERATOR, outcome=outcome,
                                     detail=f"{detail} client={request.remote_addr or '?'}"[:1000]))


def register(app: Flask, platform: Any, idle_seconds: float = 900.0) -> None:
    """The inspector's pages on ``app`` (the web application of ``platform``)."""
    app.extensions["mycarenet-inspector"] = InspectorPages(platform.settings, platform.audit,
                                                           OperatorSessions(platform.settings.data_dir, idle_seconds))
    app.register_blueprint(bp)


def _pages() -> InspectorPages:
    pages: InspectorPages = current_app.extensions["mycarenet-inspector"]
    return pages


def _page(template: str, status: int = 200, **values: Any) -> Response:
    return Response(render_template(template, **values), status, mimetype="text/html")


def _cookie_path() -> str:
    return f"{request.script_root}{bp.url_prefix}/"


class _NeedOperator(Exception):
    pass


def _next(target: str | None) -> str | None:
    """``target`` if it is a page of the inspector itself (a path of the application, under the inspector's
    prefix: the check the language switch makes, nothing off-site, nothing outside the inspector), else None."""
    return target if target and own_path(target, f"{bp.url_prefix}/") else None


def _landing(target: str | None) -> Response:
    """Where a signed-in operator goes: the inspector's page ``target`` came from, else the list."""
    checked = _next(target)
    if checked is None:
        return redirect(url_for("inspector.exchanges"))  # type: ignore[return-value]
    return redirect(request.script_root + checked)  # type: ignore[return-value]


@bp.errorhandler(_NeedOperator)
def _need_operator(_exc: _NeedOperator) -> Response:
    """To the sign-in; from a page one reads (a link to an exchange, such as a fault's ``X-Sandbox-Reason``),
    with that page as the ``next`` to land on afterwards (its path only: no query)."""
    linked = request.method == "GET" and not request.query_string and request.path != f"{bp.url_prefix}/"
    target = _next(request.path) if linked else None
    return redirect(url_for("inspector.sign_in_form", next=target))  # type: ignore[return-value]


@bp.before_request
def _before() -> None:
    g.operator = _pages().sessions.get(request.cookies.get(OPERATOR_COOKIE))
    if g.get("session") is None:  # the browser's web session: the CSRF token every form of the application carries
        g.session = current_app.extensions["mycarenet-web"].sessions.new()
        g.set_cookie = g.session.id


@bp.after_request
def _after(resp: Response) -> Response:
    if g.get("operator_cookie"):
        resp.set_cookie(OPERATOR_COOKIE, g.operator_cookie, secure=request.is_secure, httponly=True,
                        samesite="Strict", path=_cookie_path())
    elif g.get("clear_operator"):
        resp.delete_cookie(OPERATOR_COOKIE, path=_cookie_path(), secure=request.is_secure, httponly=True,
                           samesite="Strict")
    return resp


def _operator() -> OperatorSession:
    """The operator session of this request (a person's session is no operator's)."""
    operator: OperatorSession | None = g.operator
    if operator is None:
        raise _NeedOperator()
    return operator


def _store_or_page() -> InspectorStore | Response:
    store = _pages().store()
    return store if store is not None else _page("inspector/message.html", 404, error=INSPECTOR_OFF)


# -- signing in and out ----------------------------------------------------------------------------------------
@bp.get("/signin")
def sign_in_form() -> Response:
    target = _next(request.args.get("next"))
    if g.operator is not None:
        return _landing(target)
    return _page("inspector/signin.html", next=target)


@bp.post("/signin")
def sign_in() -> Response:
    pages = _pages()  # the application's CSRF check has passed (before this)
    if not pages.token_ok(request.form.get("token", "")):
        pages.audited("InspectorSignIn", "refused: not the admin token", outcome="DENIED")
        return _page("inspector/signin.html", 401, error=TOKEN_REFUSED, next=_next(request.form.get("next")))
    if g.operator is not None:
        pages.sessions.end(g.operator.id)
    operator = pages.sessions.new()  # a new id at sign-in
    g.operator, g.operator_cookie = operator, operator.id
    pages.audited("InspectorSignIn", "admin token")
    return _landing(request.form.get("next"))


@bp.post("/signout")
def sign_out() -> Response:
    if g.operator is not None:
        _pages().sessions.end(g.operator.id)
        _pages().audited("InspectorSignOut", "")
    g.operator, g.clear_operator = None, True
    return _page("inspector/message.html", notice=N_("You are signed out of the inspector."))


# -- reading ---------------------------------------------------------------------------------------------------
def _text(name: str) -> str | None:
    value = request.args.get(name, "").strip()[:MAX_FIELD]
    return value or None


def _filters() -> Filters:
    outcome = _text("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise ValueError(outcome)
    since, until = _text("since"), _text("until")
    return Filters(service=_text("service"), caller=_text("caller"), outcome=outcome,
                   since=views.parse_time(since) if since else None,
                   until=views.parse_time(until) if until else None)


def _number() -> int:
    try:
        return min(max(1, int(request.args.get("page", "1"))), 1_000_000)
    except ValueError:
        return 1


@bp.get("/")
def exchanges() -> Response:
    _operator()
    store = _store_or_page()
    if isinstance(store, Response):
        return store
    pages = _pages()
    try:
        filters = _filters()
    except ValueError:
        return _page("inspector/list.html", 400, found=[], total=0, number=1, pages=1, args=request.args,
                     services=store.services(), outcomes=OUTCOMES, error=BAD_FILTER)
    number = _number()
    total = store.matching(filters)
    found = store.list(filters, limit=pages.page_size, offset=(number - 1) * pages.page_size)
    # The filters as the audit keeps them: the caller asked for not written out (it may be anything typed).
    pages.audited("InspectList", f"service={filters.service or 'any'} caller={'one' if filters.caller else 'any'} "
                  f"outcome={filters.outcome or 'any'} since={filters.since and filters.since.isoformat()} "
                  f"until={filters.until and filters.until.isoformat()} page={number} shown={len(found)}")
    query = {k: v for k, v in request.args.items() if k != "page" and v}
    return _page("inspector/list.html", found=found, total=total, number=number,
                 pages=max(1, -(-total // pages.page_size)), args=request.args, query=query,
                 services=store.services(), outcomes=OUTCOMES)


def _exchange(store: InspectorStore, exchange_id: int) -> Any:
    found = store.get(exchange_id)
    if found is None:
        return _page("inspector/message.html", 404, error=NO_EXCHANGE)
    return found


@bp.get("/exchanges/<int:exchange_id>")
def exchange(exchange_id: int) -> Response:
    _operator()
    store = _store_or_page()
    if isinstance(store, Response):
        return store
    _pages().audited("InspectShow", f"id={exchange_id}")
    found = _exchange(store, exchange_id)
    if isinstance(found, Response):
        return found
    return _page("inspector/exchange.html", e=found, verdict=VERDICTS[views.signature_verdict(found)],
                 request_text=views.pretty_xml(found.request) if found.request else None,
                 answer_text=views.pretty_xml(found.answer), blobs=views.blobs(found))


@bp.get("/exchanges/<int:exchange_id>/files")
def exchange_files(exchange_id: int) -> Response:
    _operator()
    store = _store_or_page()
    if isinstance(store, Response):
        return store
    found = _exchange(store, exchange_id)
    if isinstance(found, Response):
        return found
    _pages().audited("InspectDownload", f"id={exchange_id}")
    return Response(views.archive(found), mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="exchange-{exchange_id}.zip"'})


@bp.get("/audit/<int:audit_seq>")
def of_audit_row(audit_seq: int) -> Response:
    """The exchange of one audit row: where a sandbox fault's ``X-Sandbox-Reason`` header points."""
    _operator()
    store = _store_or_page()
    if isinstance(store, Response):
        return store
    found = store.of_audit_row(audit_seq)
    if found is None:
        return _page("inspector/message.html", 404, error=NO_EXCHANGE)
    return redirect(url_for("inspector.exchange", exchange_id=found))  # type: ignore[return-value]


@bp.get("/diff")
def diff() -> Response:
    _operator()
    store = _store_or_page()
    if isinstance(store, Response):
        return store
    try:
        first, second = sorted(int(raw) for raw in request.args.getlist("id"))  # the older against the newer
    except ValueError:
        return _page("inspector/message.html", 400, error=PICK_TWO)
    a, b = _exchange(store, first), _exchange(store, second)
    for found in (a, b):
        if isinstance(found, Response):
            return found
    _pages().audited("InspectDiff", f"ids={first},{second}")
    text = views.diff(a, b)
    return _page("inspector/diff.html", a=a, b=b, lines=text.splitlines())


def at(value: dt.datetime) -> str:
    """A time as the list shows it: UTC, to the millisecond."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


bp.add_app_template_filter(at, "utc")
