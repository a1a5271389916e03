"""The Integrated Care web application and the sandbox IdP in a real browser: headless Chromium (Debian's
``chromium`` and ``chromium-driver``) driven by Selenium against the running sandbox, over HTTPS.

Each scenario of issue 15 item 4 is a test; every page a test reaches is saved to ``docs/screenshots/``
(the README shows them). One browser for the module; each test signs in as its own person (a TOTP code is
taken once). Without a browser the module is skipped locally and fails in CI (CI=true).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mycarenet_ic.domain.inclusions import Consent, Status, first_of_next_month
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.errors import AccessDenied
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.services.integrated_care import Declaration
from mycarenet_ic.web.app import WebApp
from mycarenet_ic.web.idp import Profile
from tests import support
from tests.integration.test_integrated_care import (
    ADMIN_LEUVEN,
    ADMIN_NAMUR,
    COORD_LEUVEN,
    NOBODY_INCLUDED,
    PSI_LEUVEN,
    A,
    C,
    state,
)

pytestmark = pytest.mark.integration

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ONLY_IN_GENT = "75050502181"      # Mertens: an information inclusion in Gent only
NAMUR_PATIENT = "52073002225"     # Janssens: principal in Namur, consent refused
# People in no project, for the coordinator's list to need more than one page.
UNINCLUDED = ["44021402211", "39060802118", "68042702242", "46010302186", "58032102205", "63070702174",
              "95111102271", "87022802110", "66090902290", "12040302104", "16082102260"]


def _browser_binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    reason = ("no headless browser here: install Debian's chromium and chromium-driver "
              "(scripts/test does when root)")
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _spki_pin(cert_file: Path) -> str:
    """The base64 SHA-256 of the sandbox TLS certificate's public key: what Chromium is told to accept
    (that one key, not any certificate)."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def browser(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    chromium, driver_path = _browser_binaries()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1100,1000", "--lang=en-GB",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
                f"--ignore-certificate-errors-spki-list={_spki_pin(sandbox.platform.pki.tls_server('127.0.0.1')[0])}"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def _gone(element: Any) -> bool:
    """Whether ``element``'s page has been replaced (Chromium says so as "stale" or as a node that no longer
    belongs to the document)."""
    from selenium.common.exceptions import WebDriverException

    try:
        element.is_enabled()
    except WebDriverException:  # StaleElementReferenceException is one
        return True
    return False


def web_of(box: Sandbox) -> WebApp:
    web: WebApp = box.apps["web"].extensions["mycarenet-web"]
    return web


class Web:
    """The browser on the sandbox's web application, with the steps the scenarios share."""

    def __init__(self, box: Sandbox, driver: Any) -> None:
        self.box, self.driver = box, driver
        self.url = box.urls["web"]

    def by(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def open(self, path: str) -> None:
        self.driver.get(self.url + path.lstrip("/"))

    def go(self, element: Any, submit: bool = False) -> None:
        """Click (or submit) what leaves the page, and wait until the next page has replaced it (reading the
        old page's elements after a click is a race)."""
        from selenium.webdriver.support.ui import WebDriverWait

        old = self.by("html")
        if submit:
            element.submit()
        else:
            element.click()
        wait = WebDriverWait(self.driver, 20)
        wait.until(lambda _driver: _gone(old))
        wait.until(lambda d: d.execute_script("return document.readyState") == "complete")

    def shot(self, name: str) -> None:
        """Every page a scenario reaches, as a PNG: into docs/screenshots/ (what the README shows) when
        MYCARENET_SCREENSHOTS=1, else next to the test's data (a test run leaves the checkout as it was)."""
        folder = SCREENSHOTS if os.environ.get("MYCARENET_SCREENSHOTS") == "1" else self.box.settings.data_dir.parent
        folder.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(folder / f"{name}.png"))
        assert (folder / f"{name}.png").stat().st_size > 1000

    def main(self) -> str:
        return str(self.by("main").text)

    def sign_in(self, ssin: str, profile: str, shot: str | None = None) -> None:
        self.driver.delete_all_cookies()
        secret = web_of(self.box).idp.secrets.enrol(ssin).secret
        self.open("/signin")
        self.by("#ssin").send_keys(ssin)
        self.by("#code").send_keys(pyotp.TOTP(secret).now())
        self.by(f"#profile-{profile}").click()
        if shot:
            self.shot(shot)
        self.go(self.by("form.stack button[type=submit]"))
        assert self.all("form.logout"), self.main()

    def consult(self, ssin: str) -> None:
        self.open("/home")
        self.by("#consult-ssin").send_keys(ssin)
        self.go(self.by("#consult-ssin"), submit=True)

    def sign_out(self) -> None:
        self.go(self.by("form.logout button"))


@pytest.fixture
def web(sandbox: Sandbox, browser: Any) -> Web:
    return Web(sandbox, browser)


def web_audit(box: Sandbox, n: int = 1) -> list[dict[str, Any]]:
    return [r for r in box.platform.audit.rows(limit=80) if r["service"] in ("web", "idp")][-n:]


def in_project(box: Sandbox, ssin: str, project: str) -> Any:
    return next(i for i in box.platform.inclusions.inclusions_of(ssin) if i.project == project)


def test_patient_signs_in_with_totp_and_changes_consent(web: Web) -> None:
    web.sign_in(A, "citizen", shot="01-sign-in")
    assert web.all("form.logout")
    row = web_audit(web.box, 3)
    assert any(r["service"] == "idp" and r["operation"] == "SignIn" and r["outcome"] == "OK" for r in row)
    # The National Register's name and birth date, shown (and in no table: only pseudonyms are stored).
    assert web.by("#patient-name").text == "Peeters, Jan Pieter"
    assert "1948" in web.by("#patient-birth").text
    web.shot("02-patient-own-inclusions")
    before = in_project(web.box, A, PSI_LEUVEN)
    assert before.consent is Consent.AGREE
    section = web.all("section.inclusion")[0]
    assert "Zorgzaam Leuven" in section.text
    section.find_element("css selector", "input[value=refuse]").click()
    web.go(section.find_element("css selector", "button[type=submit]"))
    assert "The change is saved." in web.main()
    after = in_project(web.box, A, PSI_LEUVEN)
    assert after.consent is Consent.REFUSE and after.version == before.version + 1
    assert after.operator == A
    assert web.all("section.inclusion")[0].find_element("css selector", ".consent").text.startswith("Refuses")
    web.shot("03-patient-consent-changed")
    modified, shown = web_audit(web.box, 2)    # the change, then the page shown after it
    assert (modified["operation"], modified["outcome"], shown["operation"]) == ("Modify", "OK", "ConsultOwn")
    # The patient may change nothing else: the form offers the consent only.
    assert not web.all("section.inclusion input[name=start]")


def test_psi_administrative_declares_and_another_psis_patient_is_refused_as_not_found(web: Web) -> None:
    web.sign_in(ADMIN_LEUVEN, "psi-staff")
    web.shot("04-psi-administrative-home")
    web.open("/declare")
    web.by("#ssin").send_keys(C)      # principal in Gent: declared here as information
    web.by("#status-information").click()
    web.shot("05-psi-administrative-declare")
    web.go(web.by("#ssin"), submit=True)
    assert "The inclusion is declared." in web.main(), web.main()
    assert in_project(web.box, C, PSI_LEUVEN).status is Status.INFORMATION
    # The principal inclusion elsewhere is shown without naming the PSI.
    assert web.all("#principal-elsewhere")
    assert "Gent" not in web.main() and "Boost" not in web.main() and "91000351" not in web.driver.page_source
    web.shot("06-psi-administrative-patient")

    before = state(web.box)
    web.consult(ONLY_IN_GENT)          # another PSI's patient
    concealed = web.by("main").get_attribute("innerHTML")
    web.shot("07-psi-administrative-refused")
    web.consult(NOBODY_INCLUDED)       # a patient in no project at all
    not_found = web.by("main").get_attribute("innerHTML")
    assert concealed == not_found
    assert "No inclusion was found for this patient." in web.main()
    assert state(web.box) == before
    # Both audited as refusals (PSI staff see nothing outside their PSI: a patient in no project is as hidden).
    assert [(r["operation"], r["outcome"]) for r in web_audit(web.box, 2)] == [("Consult", "DENIED")] * 2


def test_coordinator_pages_through_the_list(web: Web) -> None:
    ic, admin = web.box.platform.integrated_care(web.box.gateways), _requester(web.box, ADMIN_LEUVEN)
    for n, ssin in enumerate(UNINCLUDED):
        ic.declare(admin, f"web-list-{n}", Declaration(ssin, PSI_LEUVEN, Status.INFORMATION, dt.date.today(),
                                                       Consent.AGREE, dt.date.today()))
    total = ic.list_patients(_requester(web.box, COORD_LEUVEN), PSI_LEUVEN, 0, 1).total
    assert total > web_of(web.box).page_size
    web.sign_in(COORD_LEUVEN, "psi-staff")
    assert not web.all("a[href='/web/declare']")  # a coordinator declares nothing
    web.go(web.by("a[href='/web/projects/91000153']"))
    assert f"{total} patients · page 1 of 2" in web.by("#summary").text
    first = [r.text for r in web.all("tbody tr")]
    assert len(first) == web_of(web.box).page_size
    web.shot("08-coordinator-list")
    web.go(web.by("a[rel=next]"))
    second = [r.text for r in web.all("tbody tr")]
    assert len(second) == total - len(first) and not set(first) & set(second)
    assert "page 2 of 2" in web.by("#summary").text and not web.all("a[rel=next]")
    web.go(web.by("a[rel=prev]"))
    assert [r.text for r in web.all("tbody tr")] == first
    # No mass export: the address cannot ask for a bigger page.
    web.open("/projects/91000153?page_size=100000&size=100000&limit=100000&per_page=100000")
    assert [r.text for r in web.all("tbody tr")] == first
    web.open("/projects/91000153?page=99999999999999999999")  # past any page, past any integer: no 500
    assert web.all("#summary") and not web.all("tbody tr")


@pytest.mark.parametrize("target", ["/%09/evil.example", "/%0d%0a/evil.example", "//evil.example",
                                    "https://evil.example/", "/\\evil.example"])
def test_the_language_switch_goes_back_only_to_this_application(web: Web, target: str) -> None:
    # A browser drops tabs and line breaks from a URL: "/<TAB>/evil.example" would be "//evil.example".
    answer = requests.get(f"{web.url}language/fr?next={target}", allow_redirects=False, timeout=10)
    assert answer.status_code == 302 and answer.headers["Location"] == "/web/", answer.headers.get("Location")
    own = requests.get(f"{web.url}language/fr?next=/signin", allow_redirects=False, timeout=10)
    assert own.headers["Location"] == "/web/signin"  # the application's own paths, under its mount


def test_pharmacist_consults_through_the_pharmacys_link(web: Web) -> None:
    web.sign_in(support.PHARMACIST_SSIN, "pharmacist")
    web.consult(A)                     # linked to the pharmacy the pharmacist works in
    assert web.by("#patient-name").text == "Peeters, Jan Pieter"
    assert len(web.all("section.inclusion")) == 2
    web.shot("09-pharmacist-consult")
    web.consult(support.PATIENT_UNLINKED)   # no link with that pharmacy: refused
    assert "You may not do this" in web.by("#error").text
    assert web_audit(web.box)[0]["outcome"] == "DENIED"


def test_a_forged_form_post_without_csrf_token_is_refused(web: Web) -> None:
    web.sign_in(NAMUR_PATIENT, "citizen")
    inclusion = web.by("input[name=inclusion]").get_attribute("value")
    before, kept = state(web.box), in_project(web.box, NAMUR_PATIENT, "91000252")
    # Another site's page posting to the application: the session cookie (SameSite=Strict) is not even sent.
    forged = (f'<form method="post" action="{web.url}modify"><input name="inclusion" value="{inclusion}">'
              '<input name="consent" value="agree"><input name="consent_date" value="2026-01-01">'
              '<input name="request_id" value="forged-request-0001"><button id="go">go</button></form>')
    web.driver.get("data:text/html;base64," + base64.b64encode(forged.encode()).decode())
    web.go(web.by("#go"))
    assert "This form has expired or was not sent from this site." in web.main()
    web.shot("10-forged-post-refused")
    # The same post with the session's own cookie but no token: refused too.
    cookie = web.driver.get_cookie("mycarenet_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/web/"  # the application's own path on the sandbox's one port, nothing wider
    answer = requests.post(web.url + "modify", cookies={"mycarenet_session": cookie["value"]}, timeout=10,
                           data={"inclusion": inclusion, "consent": "agree", "consent_date": "2026-01-01",
                                 "request_id": "forged-request-0002"})
    assert answer.status_code == 403 and "Nothing was changed" in answer.text
    assert state(web.box) == before and in_project(web.box, NAMUR_PATIENT, "91000252") == kept
    assert [r["outcome"] for r in web_audit(web.box, 2)] == ["DENIED", "DENIED"]


def test_after_logout_the_back_button_shows_nothing(web: Web) -> None:
    web.sign_in(ADMIN_NAMUR, "psi-staff")
    web.consult(NAMUR_PATIENT)
    assert web.by("#patient-name").text == "Janssens, Maria"
    web.sign_out()
    assert "You are signed out." in web.main()
    web.shot("11-signed-out")
    web.driver.back()
    assert "Janssens" not in web.driver.page_source
    assert web.all("#ssin") and web.driver.current_url.endswith("/signin")
    assert web.driver.get_cookie("mycarenet_session") is None or not web.all("form.logout")


def test_pages_in_french_and_dutch(web: Web) -> None:
    web.driver.delete_all_cookies()
    web.open("/language/fr?next=/signin")
    assert web.by("html").get_attribute("lang") == "fr" and "Se connecter" in web.by("h1").text
    assert web.driver.current_url == web.url + "signin"  # back under the application's path (/web/)
    assert web.driver.get_cookie("lang")["path"] == "/web/"
    web.shot("12-sign-in-french")
    web.open("/language/nl?next=/signin")
    assert "Aanmelden" in web.by("h1").text
    web.open("/language/en?next=/signin")


def test_sign_in_is_rate_limited_and_a_code_is_taken_once(sandbox: Sandbox) -> None:
    url, idp = sandbox.urls["web"], web_of(sandbox).idp
    person = "90120102180"
    secret = idp.secrets.enrol(person).secret

    def attempt(code: str) -> requests.Response:
        s = requests.Session()
        page = s.get(url + "signin", timeout=10)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        return s.post(url + "signin", data={"csrf": csrf.group(1), "ssin": person, "code": code,
                                            "profile": "citizen"}, timeout=10)

    good = pyotp.TOTP(secret).now()
    assert attempt(good).url.endswith("/home")
    assert attempt(good).status_code == 401          # the same code again
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    bound = idp.throttle.limits["address+account"]
    assert [attempt(wrong).status_code for _ in range(bound)] == [401] * bound
    locked = attempt(good)
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text
    rows = web_audit(sandbox, bound + 2)
    assert all(r["outcome"] == "DENIED" and r["operation"] == "SignIn" for r in rows)
    assert not any(person in str(r) for r in rows)    # the NISS is never in the audit, only its pseudonym


def _requester(box: Sandbox, ssin: str) -> Any:
    from mycarenet_ic.services.requesters import Requester

    identity = web_of(box).idp.identity(ssin, Profile.PSI_STAFF)
    assert identity.quality is Quality.PSI_STAFF
    return Requester(identity, audit_label=box.platform.audit.caller_label(identity))


def test_idp_enrol_prints_a_secret_that_signs_in(sandbox: Sandbox) -> None:
    import stat
    import subprocess
    import sys

    doctor = "80060102221"        # a GP with a valid VISA: enters as a care provider
    run = subprocess.run([sys.executable, "-m", "mycarenet_ic.cli", "idp", "enrol", "--ssin", doctor,
                          "--data-dir", str(sandbox.settings.data_dir)], capture_output=True, text=True, timeout=60,
                         check=True)
    secret = re.search(r"^secret: ([A-Z2-7]+)$", run.stdout, re.M)
    assert secret is not None and f"otpauth://totp/MyCareNet%20sandbox:{doctor}?secret={secret.group(1)}" in run.stdout
    assert "█" in run.stdout                                    # the terminal QR code
    files = list((sandbox.settings.data_dir / "secrets" / "idp").iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert not any(doctor in f.name or doctor in f.read_text() for f in files)
    s = requests.Session()
    page = s.get(sandbox.urls["web"] + "signin", timeout=10)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    home = s.post(sandbox.urls["web"] + "signin", timeout=10, data={
        "csrf": csrf.group(1), "ssin": doctor, "code": pyotp.TOTP(secret.group(1)).now(), "profile": "provider"})
    assert home.url.endswith("/home") and "Declare an inclusion" in home.text
    # The same person may not enter as a pharmacist or as PSI staff: the seed does not let them.
    for profile in (Profile.PHARMACIST, Profile.PSI_STAFF):
        with pytest.raises(AccessDenied):
            web_of(sandbox).idp.identity(doctor, profile)


def test_the_national_registers_name_and_birth_date_are_shown_never_stored(web: Web) -> None:
    web.sign_in(support.DOCTOR_SSIN, "provider")
    web.consult(A)                     # linked to the doctor
    assert web.by("#patient-name").text == "Peeters, Jan Pieter" and "1948" in web.by("#patient-birth").text
    person = web.box.scenario.persons[A]
    # Every table of the platform's database, every value as text: neither the name nor the birth date.
    from sqlalchemy import MetaData, select

    tables = MetaData()
    tables.reflect(web.box.platform.engine)
    with web.box.platform.engine.connect() as conn:
        stored = " ".join(str(v) for t in tables.sorted_tables for row in conn.execute(select(t)) for v in row)
    assert len(tables.sorted_tables) > 5 and "web_sessions" in tables.tables and A not in stored
    born = dt.date.fromisoformat(person.birth_date)
    for shown in (person.last_name, " ".join(person.first_names), born.isoformat(), born.strftime("%d/%m/%Y"),
                  born.strftime("%Y%m%d")):
        assert shown not in stored, shown


GENT_ADMIN, PSI_GENT = "83060602231", "91000351"   # the PSI administrative of Boost Gent; its PSI


def test_psi_administrative_changes_only_the_start_date_and_the_consent(web: Web) -> None:
    web.sign_in(GENT_ADMIN, "psi-staff")
    web.consult(C)                     # principal in Gent since 2026-01-05
    (section,) = web.all("section.inclusion")   # the Gent inclusion only (another PSI's is no business of theirs)
    offered = {e.get_attribute("name") for e in section.find_elements(
        "css selector", "input:not([type=hidden]), select")}
    assert offered == {"start", "consent", "consent_date"}     # no status, no end: the seed's two fields
    before = in_project(web.box, C, PSI_GENT)
    later = before.declared_start + dt.timedelta(days=40)    # a declared start; it takes effect on a 1st
    web.driver.execute_script("arguments[0].value = arguments[1]", section.find_element("css selector",
                                                                                        "input[name=start]"),
                              later.isoformat())
    web.go(section.find_element("css selector", "button[type=submit]"))
    assert "The change is saved." in web.main(), web.main()
    after = in_project(web.box, C, PSI_GENT)
    assert (after.declared_start, after.start, after.version, after.status, after.consent) == (
        later, first_of_next_month(later), before.version + 1, before.status, before.consent)
    # The page decides nothing: a post of a field the form does not offer (the status) is the use case's
    # refusal, with the session's cookie and CSRF token, and changes nothing.
    kept = state(web.box)
    answer = requests.post(web.url + "modify", timeout=10,
                           cookies={"mycarenet_session": web.driver.get_cookie("mycarenet_session")["value"]},
                           data={"csrf": web.by("input[name=csrf]").get_attribute("value"), "inclusion": after.id,
                                 "status": "information", "request_id": "web-status-by-admin-0001"})
    assert answer.status_code == 403 and "You may not do this" in answer.text, answer.text[:300]
    assert state(web.box) == kept and in_project(web.box, C, PSI_GENT) == after
    refused, shown = web_audit(web.box, 2)   # the refusal, then the patient's page shown again with it
    assert [(r["operation"], r["outcome"]) for r in (refused, shown)] == [("Modify", "DENIED"), ("Consult", "OK")]
