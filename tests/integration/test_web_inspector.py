"""The inspector's browser view (issue 16 item 1) in headless Chromium: the operator signs in with the admin
token (a wrong one refused, a person's IdP session worth nothing here), filters the list, reads an attack's
true reason that the client never got, downloads one exchange as files, compares two.

The harness (one browser for the module, the steps, the screenshots) is test_web's.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from typing import Any
from urllib.parse import quote, urljoin

import pytest
import requests

from mycarenet_ic.inspector import Exchange, views
from mycarenet_ic.inspector.reason import HEADER
from mycarenet_ic.inspector.store import InspectorStore
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.wssec import Signer, Verifier
from mycarenet_ic.stubs.admin import admin_token
from mycarenet_ic.web.inspector_pages import OPERATOR_COOKIE
from tests import attacks, support
from tests.integration import test_inspector, test_web
from tests.integration.test_attacks import ATTACKS
from tests.integration.test_inspector import TRUE_REASONS, _memberdata, recorded_since
from tests.integration.test_integrated_care import A
from tests.integration.test_sandbox_reason import POINTER, send
from tests.integration.test_web import Web

pytestmark = pytest.mark.integration
# test_web's harness (one browser, the steps) and test_inspector's signer and store: their fixtures, not copies.
browser, web = test_web.browser, test_web.web
signer, store = test_inspector.signer, test_inspector.store


def operator_sign_in(web: Web, token: str, shot: str | None = None) -> None:
    """A fresh browser (no cookie) asks for the inspector, is sent to its sign-in, gives ``token``."""
    web.driver.delete_all_cookies()
    web.open("/inspector/")
    assert web.driver.current_url == web.url + "inspector/signin"
    web.by("#token").send_keys(token)
    if shot:
        web.shot(shot)
    web.go(web.by("#operator-signin button[type=submit]"))


def inspector_rows(box: Sandbox, n: int = 1) -> list[dict[str, Any]]:
    return [r for r in box.platform.audit.rows(limit=200) if str(r["operation"]).startswith("Inspect")][-n:]


@pytest.fixture(scope="module")
def traffic(sandbox: Sandbox, store: InspectorStore, signer: Signer,
            answer_verifier: Verifier) -> tuple[Exchange, Exchange, dict[str, str], dt.datetime]:
    """A doctor's answered MemberData call and an attack on the AttributeAuthority (its generic fault, as the
    client got it), recorded; and the time before them."""
    started = dt.datetime.now(dt.UTC)
    newest = store.newest_id()
    answer = support.post(sandbox.urls["memberdata"], _memberdata(signer))
    assert answer.status == 200 and answer.fault is None
    (md,) = [e for e in recorded_since(sandbox, store, newest) if e.service == "memberdata"]
    newest = store.newest_id()
    refused = support.post(sandbox.urls["attribute-authority"], ATTACKS["body changed after signing"](signer))
    fault = attacks.refused(refused, answer_verifier, {"SECURITY_ERROR"})
    (attack,) = recorded_since(sandbox, store, newest)
    assert attack.reason and "digest of Body" in attack.reason
    return md, attack, fault, started


def utc(moment: dt.datetime) -> str:
    """A time as a filter takes it in a URL (UTC, no offset: a "+" would be a space in a query)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def test_a_wrong_token_is_refused_and_the_right_one_opens_the_inspector(web: Web, traffic: Any) -> None:
    operator_sign_in(web, "not-the-token", shot="13-inspector-sign-in")
    assert "That is not this sandbox's admin token." in web.main()
    assert web.driver.get_cookie(OPERATOR_COOKIE) is None and not web.all("table.exchanges")
    assert inspector_rows(web.box)[-1]["operation"] == "InspectorSignIn"
    assert inspector_rows(web.box)[-1]["outcome"] == "DENIED"
    web.open("/inspector/")  # still nothing to see
    assert web.driver.current_url == web.url + "inspector/signin"

    operator_sign_in(web, admin_token(web.box.settings.data_dir))
    assert web.driver.current_url == web.url + "inspector/" and web.all("table.exchanges tbody tr")
    cookie = web.driver.get_cookie(OPERATOR_COOKIE)
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert cookie["path"].endswith("/inspector/")   # the inspector's pages only
    signed, listed = inspector_rows(web.box, 2)
    assert (signed["operation"], signed["outcome"], signed["caller"]) == ("InspectorSignIn", "OK", "operator:web")
    assert listed["operation"] == "InspectList"   # every read audited, as the command line's
    web.go(web.by("form.operator button[type=submit]"))
    assert "You are signed out of the inspector." in web.main()
    web.open("/inspector/")
    assert web.driver.current_url == web.url + "inspector/signin"


def test_the_sign_in_form_needs_its_csrf_token(sandbox: Sandbox) -> None:
    url = sandbox.urls["web"] + "inspector/signin"
    s = requests.Session()
    page = s.get(url, timeout=10)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert page.status_code == 200 and csrf is not None
    token = admin_token(sandbox.settings.data_dir)
    forged = s.post(url, data={"token": token}, timeout=10, allow_redirects=False)   # the right token, no CSRF
    assert forged.status_code == 403 and OPERATOR_COOKIE not in forged.cookies
    taken = s.post(url, data={"token": token, "csrf": csrf.group(1)}, timeout=10, allow_redirects=False)
    assert taken.status_code == 302 and taken.cookies.get(OPERATOR_COOKIE)


def _summary(web: Web) -> tuple[int, int]:
    found = re.search(r"(\d+) exchanges · page \d+ of (\d+)", web.by("#summary").text)
    assert found is not None, web.by("#summary").text
    return int(found.group(1)), int(found.group(2))


def test_filters_narrow_the_list(web: Web, traffic: Any) -> None:
    md, attack, _fault, started = traffic
    operator_sign_in(web, admin_token(web.box.settings.data_dir))
    everything, _ = _summary(web)
    web.shot("14-inspector-list")
    # By service (the form, no script: a GET with the filters in the query).
    from selenium.webdriver.support.ui import Select

    Select(web.by("#f-service")).select_by_value("memberdata")
    web.go(web.by("#filters button[type=submit]"))
    services = {td.text for td in web.all("tbody td.service")}
    memberdata, _ = _summary(web)
    assert services == {"memberdata"} and 0 < memberdata < everything
    assert str(md.id) in [tr.get_attribute("data-id") for tr in web.all("tbody tr")]
    # By outcome, and by caller too.
    web.open("/inspector/?outcome=DENIED")
    assert {td.text.split()[0] for td in web.all("tbody td.outcome")} == {"DENIED"}
    assert str(attack.id) in [tr.get_attribute("data-id") for tr in web.all("tbody tr")]
    web.open(f"/inspector/?caller={md.caller}&service=memberdata")
    assert {td.text for td in web.all("tbody td.caller")} == {md.caller}
    # By time: nothing after now, nothing before the traffic started; both of ours in between.
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    web.open(f"/inspector/?since={later}")
    assert _summary(web)[0] == 0 and not web.all("tbody tr")
    ours = "&service=attribute-authority&caller=unknown"
    web.open(f"/inspector/?until={utc(started)}{ours}")
    assert str(attack.id) not in [tr.get_attribute("data-id") for tr in web.all("tbody tr")]
    web.open(f"/inspector/?since={utc(started)}&until={later}{ours}")
    assert [tr.get_attribute("data-id") for tr in web.all("tbody tr")] == [str(attack.id)]
    web.open("/inspector/?since=yesterday-ish")
    assert "A filter is not valid" in web.main()


def test_the_list_is_paged(web: Web, store: InspectorStore) -> None:
    from mycarenet_ic.web.inspector_pages import PAGE_SIZE

    started, newest = dt.datetime.now(dt.UTC), store.newest_id()
    for n in range(PAGE_SIZE + 3):   # more than a page of refusals of one kind
        assert support.post(web.box.urls["cobrha"], f"<not-soap n='{n}'/>".encode()).status == 500
    assert len(recorded_since(web.box, store, newest)) >= PAGE_SIZE + 3
    operator_sign_in(web, admin_token(web.box.settings.data_dir))
    query = f"?service=cobrha&caller=unknown&since={utc(started)}"
    web.open(f"/inspector/{query}")
    total, count = _summary(web)
    assert total == PAGE_SIZE + 3 and count == 2
    first = [tr.get_attribute("data-id") for tr in web.all("tbody tr")]
    web.go(web.by("a[rel=next]"))
    assert "page 2 of 2" in web.by("#summary").text and not web.all("a[rel=next]")
    second = [tr.get_attribute("data-id") for tr in web.all("tbody tr")]
    assert len(first) == PAGE_SIZE and len(second) == 3 and not set(first) & set(second)
    assert int(first[-1]) > int(second[0])   # newest first, page after page, the filters kept
    assert {td.text for td in web.all("tbody td.service")} == {"cobrha"}
    web.go(web.by("a[rel=prev]"))
    assert [tr.get_attribute("data-id") for tr in web.all("tbody tr")] == first
    web.open(f"/inspector/{query}&page=99999999999999999999")   # past any page, past any integer: no 500
    assert _summary(web)[0] == total and not web.all("tbody tr")


def test_an_attacks_true_reason_is_shown_while_the_client_got_the_generic_fault(web: Web, traffic: Any) -> None:
    _md, attack, fault, _started = traffic
    operator_sign_in(web, admin_token(web.box.settings.data_dir))
    web.open(f"/inspector/exchanges/{attack.id}")
    web.shot("15-inspector-exchange")
    reason = web.by("#reason").text
    assert reason == attack.reason and "digest of Body" in reason
    assert reason not in fault["Message"]    # the client was told the generic text only
    assert web.by("#code").text == "SECURITY_ERROR" and web.by("#verdict").text == "refused"
    assert web.by("#outcome").text == "DENIED (500)"
    # The messages, pretty-printed and escaped (markup shown as text, never as elements of the page).
    assert "<soap:Envelope" in web.by("#request").text or "Envelope" in web.by("#request").text
    assert web.by("#answer").text == views.pretty_xml(attack.answer).rstrip("\n")
    assert not web.all("main pre *")
    assert inspector_rows(web.box)[-1]["operation"] == "InspectShow"


def test_the_decoded_blobs_of_an_answered_exchange(web: Web, traffic: Any) -> None:
    md, *_ = traffic
    operator_sign_in(web, admin_token(web.box.settings.data_dir))
    web.open(f"/inspector/exchanges/{md.id}")
    assert web.by("#verdict").text == "verified" and web.by("#caller").text == md.caller
    blobs = [pre.text for pre in web.all("pre.blob")]
    assert blobs == [b.text.rstrip("\n") for b in views.blobs(md)] and "AttributeQuery" in blobs[0]


def test_one_exchange_downloads_as_files(web: Web, traffic: Any) -> None:
    md, attack, *_ = traffic
    operator_sign_in(web, admin_token(web.box.settings.data_dir))
    web.open(f"/inspector/exchanges/{attack.id}")
    link = web.by("#download").get_attribute("href")
    cookie = web.driver.get_cookie(OPERATOR_COOKIE)["value"]
    for exchange in (attack, md):
        url = link.replace(f"/{attack.id}/", f"/{exchange.id}/")
        got = requests.get(url, cookies={OPERATOR_COOKIE: cookie}, timeout=10)
        assert got.status_code == 200 and got.headers["Content-Type"] == "application/zip"
        assert f'filename="exchange-{exchange.id}.zip"' in got.headers["Content-Disposition"]
        with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
            files = {name.split("/", 1)[1]: archive.read(name) for name in archive.namelist()}
        assert files == views.files(exchange)
        assert files["request.xml"] == exchange.request and files["answer.xml"] == exchange.answer
        assert {"request.xml", "answer.xml", "reason.txt", "exchange.json"} <= set(files)
    assert attack.reason is not None and attack.reason.encode() in views.files(attack)["reason.txt"]
    assert {"request-blob-0.xml", "answer-blob-0.xml"} <= set(views.files(md))
    # Without the operator's cookie: nothing.
    assert requests.get(link, timeout=10, allow_redirects=False).status_code == 302
    assert inspector_rows(web.box)[-1]["operation"] == "InspectDownload"


def test_a_diff_of_two_exchanges(web: Web, traffic: Any) -> None:
    md, attack, *_ = traffic
    operator_sign_in(web, admin_token(web.box.settings.data_dir))
    web.open(f"/inspector/?since={utc(md.at)}&until={utc(attack.at)}")   # both on the first page
    web.by(f"#pick-{md.id}").click()
    web.by(f"#pick-{attack.id}").click()
    web.go(web.by("#compare button[type=submit]"))
    web.shot("16-inspector-diff")
    removed = [s.text for s in web.all("#diff .del")]
    added = [s.text for s in web.all("#diff .add")]
    assert f"-service: {md.service}" in removed and f"+service: {attack.service}" in added
    assert any(line.startswith("+reason: ") and "digest of Body" in line for line in added)
    assert [s.text for s in web.all("#diff span")] == views.diff(md, attack).splitlines()
    assert inspector_rows(web.box)[-1]["operation"] == "InspectDiff"
    web.open(f"/inspector/diff?id={md.id}")
    assert "Choose exactly two exchanges" in web.main()
    web.open(f"/inspector/diff?id={md.id}&id={md.id}")
    assert web.all("#alike")


def test_a_person_signed_in_through_the_idp_sees_nothing_of_the_inspector(web: Web, traffic: Any) -> None:
    md, attack, *_ = traffic
    web.sign_in(A, "citizen")
    for path in ("/inspector/", f"/inspector/exchanges/{attack.id}", f"/inspector/exchanges/{md.id}/files",
                 f"/inspector/diff?id={md.id}&id={attack.id}"):
        web.open(path)
        assert web.driver.current_url.startswith(web.url + "inspector/signin"), path
        assert not web.all("table.exchanges") and not web.all("pre") and "digest of Body" not in web.driver.page_source
    cookie = web.driver.get_cookie("mycarenet_session")
    answer = requests.get(web.url + f"inspector/exchanges/{attack.id}", cookies={"mycarenet_session": cookie["value"]},
                          timeout=10, allow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith(f"/inspector/signin?next=/inspector/exchanges/{attack.id}")
    # Nor does the person's session id open it as an operator's.
    answer = requests.get(web.url + "inspector/", cookies={OPERATOR_COOKIE: cookie["value"]}, timeout=10,
                          allow_redirects=False)
    assert answer.status_code == 302


def _submit_token(web: Web) -> None:
    web.by("#token").send_keys(admin_token(web.box.settings.data_dir))
    web.go(web.by("#operator-signin button[type=submit]"))


def test_the_link_of_a_refusal_lands_the_operator_on_its_exchange_after_signing_in(
        web: Web, store: InspectorStore, signer: Signer, answer_verifier: Verifier) -> None:
    newest = store.newest_id()
    answer, headers = send(web.box.urls["attribute-authority"], ATTACKS["expired timestamp"](signer))
    attacks.refused(answer, answer_verifier, {"SECURITY_ERROR"})
    found = POINTER.match(headers[HEADER])
    assert found is not None, headers[HEADER]
    (attack,) = recorded_since(web.box, store, newest)
    assert attack.audit_seq == int(found.group(1)) and attack.reason
    assert re.search(TRUE_REASONS["expired timestamp"], attack.reason), attack.reason
    web.driver.delete_all_cookies()   # nobody signed in: the link goes to the sign-in, the exchange carried
    web.driver.get(found.group(2))
    assert web.driver.current_url == web.url + f"inspector/signin?next=/inspector/audit/{attack.audit_seq}"
    assert not web.all("#reason") and attack.reason not in web.driver.page_source
    _submit_token(web)
    assert web.driver.current_url == web.url + f"inspector/exchanges/{attack.id}"
    assert web.by("#reason").text == attack.reason and web.by("#code").text == "SECURITY_ERROR"
    assert web.by("#verdict").text == "refused" and web.by("#answer").text == views.pretty_xml(
        attack.answer).rstrip("\n")
    # Signed in already, the sign-in page with a next goes straight there.
    web.open(f"/inspector/signin?next=/inspector/exchanges/{attack.id}")
    assert web.driver.current_url == web.url + f"inspector/exchanges/{attack.id}"


FORGED = ["//evil.example/", "https://evil.example/", "/web/../x", "/\\evil.example", "/inspector/../../x",
          "/\t/evil.example", "/inspector/\r\n//evil.example", "javascript:alert(1)", "/signin",
          "/inspector/exchanges/1?x=//evil.example", "%2F%2Fevil.example"]


@pytest.mark.parametrize("target", FORGED)
def test_a_forged_next_lands_on_the_inspectors_list_never_elsewhere(web: Web, target: str) -> None:
    # In the browser: the sign-in page is asked for with the forged next; it carries nothing of it.
    web.driver.delete_all_cookies()
    web.open(f"/inspector/signin?next={quote(target, safe='')}")
    assert not web.all("#operator-signin input[name=next]")
    _submit_token(web)
    assert web.driver.current_url == web.url + "inspector/"
    # Over HTTP: the forged next posted in the form itself (with the CSRF token and the right admin token).
    s = requests.Session()
    form = s.get(web.url + "inspector/signin", timeout=10)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    signed_in = s.post(web.url + "inspector/signin", timeout=10, allow_redirects=False, data={
        "token": admin_token(web.box.settings.data_dir), "csrf": csrf.group(1), "next": target})
    assert signed_in.status_code == 302 and signed_in.cookies.get(OPERATOR_COOKIE)
    assert signed_in.headers["Location"] == "/web/inspector/", signed_in.headers["Location"]
    assert urljoin(web.url, signed_in.headers["Location"]) == web.url + "inspector/"


def test_a_next_needs_the_csrf_token_and_the_admin_token_as_before(sandbox: Sandbox) -> None:
    url, target = sandbox.urls["web"] + "inspector/signin", "/inspector/audit/1"
    s = requests.Session()
    csrf = re.search(r'name="csrf" value="([^"]+)"', s.get(f"{url}?next={target}", timeout=10).text)
    assert csrf is not None
    token = admin_token(sandbox.settings.data_dir)
    forged = s.post(url, data={"token": token, "next": target}, timeout=10, allow_redirects=False)
    assert forged.status_code == 403 and OPERATOR_COOKIE not in forged.cookies
    wrong = s.post(url, data={"token": "not-it", "csrf": csrf.group(1), "next": target}, timeout=10,
                   allow_redirects=False)
    assert wrong.status_code == 401 and OPERATOR_COOKIE not in wrong.cookies
    assert f'name="next" value="{target}"' in wrong.text   # kept for the next try
    taken = s.post(url, data={"token": token, "csrf": csrf.group(1), "next": target}, timeout=10,
                   allow_redirects=False)
    assert taken.status_code == 302 and taken.headers["Location"] == f"/web{target}"
