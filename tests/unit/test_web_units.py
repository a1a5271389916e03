"""The web application's parts that need no browser: the catalogues, sessions, sign-in throttling (the last
two in a real database, SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from sqlalchemy.engine import Engine

from mycarenet_ic.domain.qualities import CallerIdentity, Quality
from mycarenet_ic.persistence.db import make_engine, migrate
from mycarenet_ic.persistence.pseudonym import NissSealer
from mycarenet_ic.web import i18n
from mycarenet_ic.web.idp import Throttle
from mycarenet_ic.web.sessions import Session, SessionStore
from tests import support
from tests.conftest import BACKENDS

pytestmark = pytest.mark.unit

WEB = Path(i18n.__file__).parent
PERSON = CallerIdentity(Quality.CITIZEN, "48031202166", None, "SERIALNUMBER=48031202166", "idp:citizen")


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated database of its own on each backend."""
    urls = iter([f"sqlite:///{tmp_path / 'web.sqlite3'}"]) if request.param == "sqlite" else support.postgres_database()
    for url in urls:
        db = make_engine(url)
        migrate(db)
        try:
            yield db
        finally:
            db.dispose()


def sessions(engine: Engine, **options: object) -> SessionStore:
    return SessionStore(engine, NissSealer(secrets.token_bytes(32)), **options)  # type: ignore[arg-type]


def alive(store: SessionStore, session: Session) -> bool:
    """Whether ``session`` is still there, as it was stored (its idle clock restarted)."""
    found = store.get(session.id)
    return found is not None and (found.id, found.csrf, found.identity, found.profile, found.created) == (
        session.id, session.csrf, session.identity, session.profile, session.created)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _messages() -> set[str]:
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    return {str(m) for _f, _l, m, _c, _x in extract_from_dir(str(WEB), method_map,
                                                              keywords={"_": None, "N_": None, "gettext": None})}


@pytest.mark.parametrize("language", ["fr", "nl"])
def test_every_message_is_translated_and_the_mo_file_says_what_the_po_file_says(language: str) -> None:
    folder = i18n.TRANSLATIONS_DIR / language / "LC_MESSAGES"
    po = {m.id: m.string for m in read_po(io.BytesIO((folder / "messages.po").read_bytes())) if m.id}
    mo = {m.id: m.string for m in read_mo(io.BytesIO((folder / "messages.mo").read_bytes())) if m.id}
    wanted = _messages()
    assert wanted and wanted <= set(po), sorted(wanted - set(po))
    assert all(po[m] and po[m] != m or m in ("Information", "Status", "Pages", "sandbox") for m in wanted)
    assert mo == po


def test_a_translation_is_used_and_an_unknown_language_is_english() -> None:
    assert i18n.translations("fr").gettext("Sign out") == "Se déconnecter"
    assert i18n.translations("nl").gettext("Sign out") == "Afmelden"
    assert i18n.translations("xx").gettext("Sign out") == "Sign out"


def test_a_session_ends_after_the_idle_timeout_and_a_request_restarts_it(engine: Engine) -> None:
    clock = Clock()
    store = sessions(engine, idle_seconds=60, max_seconds=3600, clock=clock)
    session = store.signed_in(store.new(), PERSON, "citizen")
    clock.now += 59
    assert alive(store, session)
    clock.now += 59                      # 59 s since the last request: still there
    assert alive(store, session)
    clock.now += 61
    assert store.get(session.id) is None
    assert store.get(session.id) is None  # gone, not revived


def test_a_session_ends_after_its_lifetime_however_busy_and_at_logout(engine: Engine) -> None:
    clock = Clock()
    store = sessions(engine, idle_seconds=60, max_seconds=300, clock=clock)
    busy = store.signed_in(store.new(), PERSON, "citizen")
    for _ in range(7):                  # a request every 50 s: never idle, 350 s in all
        clock.now += 50
        store.get(busy.id)
    assert store.get(busy.id) is None
    other = store.signed_in(store.new(), PERSON, "citizen")
    store.end(other.id)
    assert store.get(other.id) is None


def test_signing_in_gives_a_new_id_and_token_and_ends_the_old_session(engine: Engine) -> None:
    store = sessions(engine)
    before = store.new()
    after = store.signed_in(before, PERSON, "citizen")
    assert after.id != before.id and after.csrf != before.csrf and after.identity == PERSON
    assert store.get(before.id) is None
    assert not after.csrf_ok(None) and not after.csrf_ok("") and not after.csrf_ok(before.csrf)
    assert after.csrf_ok(after.csrf)


def test_a_session_survives_a_restart_is_seen_by_every_worker_and_the_database_holds_no_id_nor_niss(
        engine: Engine) -> None:
    from sqlalchemy import select

    from mycarenet_ic.persistence.tables import web_sessions

    sealer = NissSealer(secrets.token_bytes(32))
    worker = SessionStore(engine, sealer)
    session = worker.signed_in(worker.new(), PERSON, "psi-staff")
    session.staff_roles, session.patient = (("administrative", "91000153"),), "72061602183"
    session.messages.append("The inclusion is declared.")
    worker.save(session)
    other = SessionStore(engine, sealer)   # another worker, or the same one after a restart
    seen = other.get(session.id)
    assert seen is not None and alive(other, session)
    assert (seen.staff_roles, seen.patient, seen.messages) == (session.staff_roles, session.patient, session.messages)
    seen.messages.clear()                  # shown once: what one worker changes, the next request sees
    other.save(seen)
    assert worker.get(session.id).messages == []  # type: ignore[union-attr]
    with engine.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(select(web_sessions)) for v in row)
    assert session.id not in stored and PERSON.ssin not in stored and "72061602183" not in stored  # type: ignore[operator]


def test_expired_sessions_are_deleted_from_the_database(engine: Engine) -> None:
    clock = Clock()
    store = sessions(engine, idle_seconds=60, max_seconds=300, clock=clock)
    for _ in range(30):
        store.new()
    assert len(store) == 30
    clock.now += 61
    store.new()                         # the next one sweeps the expired rows away
    assert len(store) == 1


def test_throttle_blocks_after_the_limit_until_the_window_passes(engine: Engine) -> None:
    clock = Clock()
    throttle = Throttle(engine, {"k": 3}, window=300, clock=clock)
    for _ in range(3):
        assert throttle.attempt({"k": "a"}).blocked_by is None
    assert throttle.attempt({"k": "a"}).blocked_by == "k"
    assert throttle.attempt({"k": "other"}).blocked_by is None
    assert Throttle(engine, {"k": 3}, window=300, clock=clock).attempt({"k": "a"}).blocked_by == "k"  # restarted
    clock.now += 301
    assert throttle.attempt({"k": "a"}).blocked_by is None
    from sqlalchemy import func, select

    from mycarenet_ic.persistence.tables import web_signin_attempts
    with engine.connect() as conn:      # what the window has passed is gone
        assert conn.execute(select(func.count()).select_from(web_signin_attempts)).scalar_one() == 1


def test_a_forgiven_attempt_is_no_failure_and_a_blocked_one_counts_nothing(engine: Engine) -> None:
    throttle = Throttle(engine, {"pair": 2, "all": 3}, window=300, clock=Clock())
    throttle.forgive(throttle.attempt({"pair": "x", "all": "*"}))      # a right code
    assert throttle.attempt({"pair": "x", "all": "*"}).blocked_by is None
    assert throttle.attempt({"pair": "x", "all": "*"}).blocked_by is None
    assert throttle.attempt({"pair": "x", "all": "*"}).blocked_by == "pair"   # not counted against "all"
    assert throttle.attempt({"pair": "y", "all": "*"}).blocked_by is None
    assert throttle.attempt({"pair": "z", "all": "*"}).blocked_by == "all"    # the global bound


def test_a_parallel_burst_gets_exactly_the_limit_through(engine: Engine) -> None:
    threads = 24
    start = threading.Barrier(threads)

    def one(_n: int) -> bool:
        start.wait()
        return throttle.attempt({"account": "victim", "all": "*"}).blocked_by is None

    clock = Clock()
    for _burst in range(3):   # a count and an insert without the lock let 20 through on PostgreSQL
        clock.now += 400      # each burst in a window of its own
        throttle = Throttle(engine, {"account": 5, "all": 1000}, window=300, clock=clock)
        with ThreadPoolExecutor(threads) as pool:
            assert sum(pool.map(one, range(threads))) == 5


def test_anyone_opening_sessions_cannot_grow_the_store_nor_push_out_signed_in_people(engine: Engine) -> None:
    store = sessions(engine, max_sessions=50)
    doctor = CallerIdentity(Quality.DOCTOR, "74030902123", "11200035003", "CN=SSIN=74030902123", "f")
    kept = store.signed_in(store.new(), doctor, "provider")
    opened = [store.new() for _ in range(200)]  # the sign-in page, fetched without a cookie, again and again
    assert len(store) == 50
    assert alive(store, kept)  # the signed-in session survives
    assert store.get(opened[-1].id) is not None and store.get(opened[0].id) is None  # the oldest went first
