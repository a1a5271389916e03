"""The home nurse's premium page (seed 002, issue 20 item 2) in headless Chromium: a nurse signed in through
the IdP as a care provider sees her own report, each figure with the seed's rule, and nobody else's.

The figures are the scenario's (the demo's home_nursing part, the same data as the CLI's test): the page is
compared with the use case's report, not with copies of its results. The harness is test_web's.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from babel.dates import format_date

from mycarenet_ic.domain.nurse_premium import ROUNDS, half_up
from mycarenet_ic.persistence.home_nursing import ScenarioHomeNursing
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.services.nurse_premium import NursePremium
from mycarenet_ic.stubs.scenario import DEMO_FILE
from tests import support
from tests.integration import test_web
from tests.integration.test_integrated_care import A
from tests.integration.test_nurse_premium_cli import DE_BACKER, FONTAINE, MATHIEU, VOS
from tests.integration.test_web import Web

pytestmark = pytest.mark.integration
browser, web = test_web.browser, test_web.web   # test_web's harness (one browser, the steps): its fixtures
FIGURES = {"patients": "patients", "contacts": "patient_contacts", "theoretical": "theoretical_fte",
           "salaried": "salaried_fte", "due": "fte_due"}


def ssin_of(box: Sandbox, nihii: str) -> str:
    """The NISS the nurse signs in with: the scenario's professional with that NIHII."""
    (ssin,) = [p.ssin for p in box.scenario.professionals if p.nihii == nihii]
    return ssin


def expected(box: Sandbox, nihii: str) -> dict[str, str]:
    """The use case's own report for ``nihii`` (what the CLI prints), from the sandbox's scenario."""
    data = ScenarioHomeNursing(box.settings.data_dir / "scenario.json", default=DEMO_FILE)
    (row,) = NursePremium(data, box.platform.audit, caller="test:expected").run(2020, nihii).rows()
    return row


def premium_rows(box: Sandbox) -> list[dict[str, Any]]:
    return [r for r in box.platform.audit.rows(limit=200) if r["operation"] == "NursePremium"]


def value(web: Web, row: str) -> str:
    return str(web.by(f"#{row} td.value").text)


def test_a_nurse_sees_her_own_premium_with_the_rule_behind_each_figure(web: Web) -> None:
    web.sign_in(ssin_of(web.box, FONTAINE), "provider")
    web.go(web.by("#premium-link"))
    web.shot("17-nurse-premium")
    want = expected(web.box, FONTAINE)
    assert {row: value(web, row) for row in FIGURES} == {row: want[key] for row, key in FIGURES.items()}
    assert value(web, "gross") == f"{want['gross_eur']} EUR"
    assert value(web, "independent") == "complementary activity" and want["independent"] == "complementary"
    # Hand-worked, as the unit tests work it: 370 contacts / 739, less 0.25 salaried, times 985 EUR.
    assert want["patient_contacts"] == "370" and want["salaried_fte"] == "0.2500"
    assert Decimal(want["gross_eur"]) == half_up((Fraction(370, 739) - Fraction(1, 4)) * 985, 2)
    assert not web.all("#refusal")
    rules = {row: web.by(f"#{row} td.rule").text for row in (*FIGURES, "account", "gross")}
    seed = ROUNDS[2020]
    assert "§6" in rules["contacts"] and "794253" in rules["contacts"]
    assert f"by {format_date(seed.billing_accepted_by, 'long', locale='en')}" in rules["contacts"]
    assert f"{seed.contacts_per_fte} patient contacts" in rules["theoretical"]
    assert "by April 21, 2021" in rules["account"] and "985.00 EUR" in rules["gross"]   # 2021-04-01 + 20 days
    # Audited as hers (the use case's own row), about her alone.
    row = premium_rows(web.box)[-2]     # before the test's own "expected" run
    assert row["caller"] == f"nurse:{FONTAINE}" and f"provider={FONTAINE}: 1 provider(s)" in str(row["detail"])


def test_she_sees_only_her_own_whatever_the_address_says(web: Web) -> None:
    web.sign_in(ssin_of(web.box, DE_BACKER), "provider")
    for query in ("", f"?nihii={FONTAINE}", f"?nurse={FONTAINE}&provider={VOS}"):
        web.open(f"/premium/{query}")
        assert value(web, "contacts") == expected(web.box, DE_BACKER)["patient_contacts"]
        page = web.driver.page_source
        assert DE_BACKER in page and FONTAINE not in page and VOS not in page and MATHIEU not in page


def test_a_nurse_without_the_premium_sees_why(web: Web) -> None:
    web.sign_in(ssin_of(web.box, MATHIEU), "provider")
    web.open("/premium/")
    want = expected(web.box, MATHIEU)
    assert value(web, "contacts") == want["patient_contacts"] and value(web, "gross") == "0.00 EUR"
    assert web.by("#refusal").text == f"No premium is paid: {want['reason']}."


def test_the_page_in_french(web: Web) -> None:
    web.sign_in(ssin_of(web.box, VOS), "provider")   # another nurse: a TOTP code is taken once
    web.open("/language/fr?next=/premium/")
    want = expected(web.box, VOS)
    assert web.by("html").get_attribute("lang") == "fr"
    assert value(web, "gross") == want["gross_eur"].replace(".", ",") + " EUR"
    assert value(web, "theoretical") == want["theoretical_fte"].replace(".", ",")
    assert re.search(r"31 janvier 2021", web.by("#contacts td.rule").text)
    web.open("/language/en?next=/premium/")


def test_others_get_no_report(web: Web) -> None:
    before = len(premium_rows(web.box))
    web.sign_in(A, "citizen")                       # a patient: not a care provider
    web.open("/premium/")
    assert "sign in as a care provider" in web.main() and not web.all("table.premium")
    web.sign_in(support.DOCTOR_SSIN, "provider")    # a doctor: no billed home nursing
    web.open("/premium/")
    assert "No billed home nursing" in web.main() and not web.all("table.premium")
    web.open("/premium/?year=2021")                 # a year seed 002 sets no premium for
    assert "Seed 002 sets no home-nurse premium for that year." in web.main()
    web.driver.delete_all_cookies()
    web.open("/premium/")
    assert web.driver.current_url == web.url + "signin"
    assert len(premium_rows(web.box)) == before     # nothing computed for any of them
