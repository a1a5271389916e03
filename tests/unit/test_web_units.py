"""The web application's parts that need no browser: the catalogues, sessions, sign-in throttling."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from mycarenet_ic.domain.qualities import CallerIdentity, Quality
from mycarenet_ic.web import i18n
from mycarenet_ic.web.idp import Throttle
from mycarenet_ic.web.sessions import SessionStore

pytestmark = pytest.mark.unit

WEB = Path(i18n.__file__).parent
PERSON = CallerIdentity(Quality.CITIZEN, "48031202166", None, "SERIALNUMBER=48031202166", "idp:citizen")


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


def test_a_session_ends_after_the_idle_timeout_and_a_request_restarts_it() -> None:
    clock = Clock()
    store = SessionStore(idle_seconds=60, max_seconds=3600, clock=clock)
    session = store.signed_in(store.new(), PERSON, "citizen")
    clock.now += 59
    assert store.get(session.id) is session
    clock.now += 59                      # 59 s since the last request: still there
    assert store.get(session.id) is session
    clock.now += 61
    assert store.get(session.id) is None
    assert store.get(session.id) is None  # gone, not revived


def test_a_session_ends_after_its_lifetime_however_busy_and_at_logout() -> None:
    clock = Clock()
    store = SessionStore(idle_seconds=60, max_seconds=300, clock=clock)
    busy = store.signed_in(store.new(), PERSON, "citizen")
    for _ in range(7):                  # a request every 50 s: never idle, 350 s in all
        clock.now += 50
        store.get(busy.id)
    assert store.get(busy.id) is None
    other = store.signed_in(store.new(), PERSON, "citizen")
    store.end(other.id)
    assert store.get(other.id) is None


def test_signing_in_gives_a_new_id_and_token_and_ends_the_old_session() -> None:
    store = SessionStore()
    before = store.new()
    after = store.signed_in(before, PERSON, "citizen")
    assert after.id != before.id and after.csrf != before.csrf and after.identity == PERSON
    assert store.get(before.id) is None
    assert not after.csrf_ok(None) and not after.csrf_ok("") and not after.csrf_ok(before.csrf)
    assert after.csrf_ok(after.csrf)


def test_throttle_blocks_after_the_limit_until_the_window_passes() -> None:
    clock = Clock()
    throttle = Throttle({"k": 3}, window=300, clock=clock)
    for _ in range(3):
        assert throttle.attempt({"k": "a"}).blocked_by is None
    assert throttle.attempt({"k": "a"}).blocked_by == "k"
    assert throttle.attempt({"k": "other"}).blocked_by is None
    clock.now += 301
    assert throttle.attempt({"k": "a"}).blocked_by is None


def test_a_forgiven_attempt_is_no_failure_and_a_blocked_one_counts_nothing() -> None:
    throttle = Throttle({"pair": 2, "all": 3}, window=300, clock=Clock())
    throttle.forgive(throttle.attempt({"pair": "x", "all": "*"}))      # a right code
    assert throttle.attempt({"pair": "x", "all": "*"}).blocked_by is None
    assert throttle.attempt({"pair": "x", "all": "*"}).blocked_by is None
    assert throttle.attempt({"pair": "x", "all": "*"}).blocked_by == "pair"   # not counted against "all"
    assert throttle.attempt({"pair": "y", "all": "*"}).blocked_by is None
    assert throttle.attempt({"pair": "z", "all": "*"}).blocked_by == "all"    # the global bound


def test_a_parallel_burst_gets_exactly_the_limit_through() -> None:
    start = threading.Barrier(40)

    def one(_n: int) -> bool:
        start.wait()
        return throttle.attempt({"account": "victim", "all": "*"}).blocked_by is None

    for _ in range(20):   # many bursts: a check and a record in two steps lets a sixth through now and then
        throttle = Throttle({"account": 5, "all": 1000}, window=300)
        with ThreadPoolExecutor(40) as pool:
            assert sum(pool.map(one, range(40))) == 5


def test_anyone_opening_sessions_cannot_grow_the_store_nor_push_out_signed_in_people() -> None:
    store = SessionStore(max_sessions=50)
    doctor = CallerIdentity(Quality.DOCTOR, "74030902123", "11200035003", "CN=SSIN=74030902123", "f")
    kept = store.signed_in(store.new(), doctor, "provider")
    opened = [store.new() for _ in range(500)]  # the sign-in page, fetched without a cookie, again and again
    assert len(store) == 50
    assert store.get(kept.id) is kept  # the signed-in session survives
    assert store.get(opened[-1].id) is not None and store.get(opened[0].id) is None  # the oldest went first
