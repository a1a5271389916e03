"""The sandbox IdP's sign-in bounds and the sign-in profile as a boundary, over real HTTP sessions.

The throttle counts per (address, account), per account and in all (``IdentityProvider.throttle_keys``):
one person getting their code wrong locks out nobody else on the same address (every user of a local
sandbox comes from 127.0.0.1); guesses for one account stop whatever addresses they come from; a burst of
parallel attempts gets exactly the bound through. A session's rights are those of the profile chosen at
sign-in, however many more roles the person has.
"""

from __future__ import annotations

import datetime as dt
import re
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pyotp
import pytest
import requests

from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.web.idp import Profile, SignInRefused
from tests.integration.test_integrated_care import ADMIN_LEUVEN, COORD_LEUVEN, NOBODY_INCLUDED, PSI_LEUVEN, state
from tests.integration.test_web import web_of

pytestmark = pytest.mark.integration

# People of the demo scenario no other test of this module signs in as (each test its own, the bounds
# are the sandbox's).
NOISY = ["44021402211", "39060802118", "68042702242", "46010302186"]
QUIET = "58032102205"
GUESSED = "63070702174"
BURST = "95111102271"


def _csrf(text: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    assert found is not None, text[:500]
    return found.group(1)


def sign_in(box: Sandbox, ssin: str, code: str, profile: str) -> tuple[requests.Session, requests.Response]:
    """A browser-like client: the sign-in page (its session and CSRF token), then the form posted."""
    client = requests.Session()
    url = box.urls["web"]
    page = client.get(url + "signin", timeout=10)
    answer = client.post(url + "signin", data={"csrf": _csrf(page.text), "ssin": ssin, "code": code,
                                               "profile": profile}, timeout=10)
    return client, answer


def code_of(box: Sandbox, ssin: str) -> str:
    return pyotp.TOTP(web_of(box).idp.secrets.enrol(ssin).secret).now()


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def limit(box: Sandbox, kind: str) -> int:
    return web_of(box).idp.throttle.limits[kind]


def test_one_persons_wrong_codes_lock_out_nobody_else_on_the_same_address(sandbox: Sandbox) -> None:
    per_person = limit(sandbox, "address+account")
    for person in NOISY:        # 20 failures from 127.0.0.1: the old bound per address locked everyone out
        code = code_of(sandbox, person)
        assert [sign_in(sandbox, person, wrong(code), "citizen")[1].status_code
                for _ in range(per_person)] == [401] * per_person
        locked = sign_in(sandbox, person, code, "citizen")[1]
        assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text
    _client, home = sign_in(sandbox, QUIET, code_of(sandbox, QUIET), "citizen")
    assert home.status_code == 200 and home.url.endswith("/home"), home.text[:300]


def test_guesses_for_one_account_stop_whatever_address_they_come_from(sandbox: Sandbox) -> None:
    idp = web_of(sandbox).idp
    code = code_of(sandbox, GUESSED)
    refusals: list[SignInRefused] = []
    for n in range(limit(sandbox, "account") + 1):   # each guess from a new address
        with pytest.raises(SignInRefused) as refused:
            idp.sign_in(GUESSED, wrong(code), Profile.CITIZEN, f"198.51.100.{n}")
        refusals.append(refused.value)
    assert [r.throttled for r in refusals] == [False] * limit(sandbox, "account") + [True]
    with pytest.raises(SignInRefused) as refused:     # the right code, from yet another address: still waits
        idp.sign_in(GUESSED, code, Profile.CITIZEN, "203.0.113.9")
    assert refused.value.throttled and "(account)" in refused.value.reason


def test_a_parallel_burst_of_guesses_gets_exactly_the_bound_through(sandbox: Sandbox) -> None:
    idp, threads = web_of(sandbox).idp, 24
    code = code_of(sandbox, BURST)
    start = Barrier(threads)

    def guess(_n: int) -> str:
        start.wait()
        try:
            idp.sign_in(BURST, wrong(code), Profile.CITIZEN, "192.0.2.1")
        except SignInRefused as exc:
            return "throttled" if exc.throttled else "tried"
        return "signed in"

    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(guess, range(threads)))
    bound = limit(sandbox, "address+account")
    assert (outcomes.count("tried"), outcomes.count("throttled")) == (bound, threads - bound)
    rows = [r for r in sandbox.platform.audit.rows(limit=200) if r["operation"] == "SignIn"][-threads:]
    assert sum("wrong or expired code" in str(r["detail"]) for r in rows) == bound


def test_the_profile_chosen_at_sign_in_is_all_a_session_may_do(sandbox: Sandbox) -> None:
    url = sandbox.urls["web"]
    # A PSI administrative of Leuven, signed in as a citizen: a patient, nothing more.
    client, home = sign_in(sandbox, ADMIN_LEUVEN, code_of(sandbox, ADMIN_LEUVEN), Profile.CITIZEN.value)
    assert home.url.endswith("/home") and "Declare an inclusion" not in home.text
    before = state(sandbox)
    declared = client.post(url + "declare", timeout=10, data={
        "csrf": _csrf(home.text), "ssin": NOBODY_INCLUDED, "project": PSI_LEUVEN, "status": "information",
        "start": dt.date.today().isoformat(), "consent": "agree", "consent_date": dt.date.today().isoformat(),
        "request_id": "profile-boundary-0001"})
    assert declared.status_code == 403 and "You may not do this" in declared.text, declared.text[:300]
    assert state(sandbox) == before
    last = sandbox.platform.audit.rows(limit=5)[-1]
    assert (last["service"], last["operation"], last["outcome"]) == ("web", "Declare", "DENIED")
    # A coordinator signed in as a citizen lists nothing.
    client, home = sign_in(sandbox, COORD_LEUVEN, code_of(sandbox, COORD_LEUVEN), Profile.CITIZEN.value)
    listed = client.get(url + f"projects/{PSI_LEUVEN}", timeout=10)
    assert listed.status_code == 403 and "tbody" not in listed.text



def test_a_source_that_does_not_answer_is_a_readable_page_audited_never_a_stack_trace(sandbox: Sandbox) -> None:
    """The National Register answering production's SystemError (an injected fault) while a citizen signs in:
    a 503 page saying to try again, the sign-in audited as not decided; no session, no stack trace."""
    from tests.integration.test_fault_injection import admin, inject

    person = "87022802110"      # a citizen no other test of this module signs in as
    inject(sandbox, effect="system-error", service="national-register", for_seconds=60, times=50)
    try:
        client, answer = sign_in(sandbox, person, code_of(sandbox, person), Profile.CITIZEN.value)
    finally:
        admin(sandbox, "DELETE", "/scenario/faults")
    assert answer.status_code == 503 and "does not answer now. Please try again in a moment." in answer.text
    assert "Traceback" not in answer.text and "SOA-" not in answer.text and "national-register" not in answer.text
    assert client.get(sandbox.urls["web"] + "home", timeout=10, allow_redirects=False).status_code == 302
    row = [r for r in sandbox.platform.audit.rows(limit=50) if r["operation"] == "SignIn"][-1]
    assert (row["service"], row["outcome"]) == ("idp", "ERROR") and "not decided" in str(row["detail"])
    assert person not in str(row)
