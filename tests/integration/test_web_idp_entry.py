"""Who may enter through the sandbox IdP follows seed 000 §10–§13 (issue 15 item 1): a table, one row per
way in and per reason to be refused, asked of the running stubs (CoBrHa, the AttributeAuthority, the
National Register) as a sign-in asks them; and a person the seed keeps out, with a right code, refused over
HTTP with the one generic message, no session, the true reason in the audit.

The sandbox's scenario is the demo's with one change: the pharmacist Dupont (76102002274) works only in the
demo's closed pharmacy (Apotheek Centrum, Gent, 64099083), so that "a pharmacist of an open pharmacy" has a
row that is refused for that reason alone (his VISA is valid).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
import requests

from mycarenet_ic.app import Platform
from mycarenet_ic.config import Settings
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.errors import AccessDenied
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.stubs.scenario import DEMO_FILE
from mycarenet_ic.web.idp import Profile
from tests import support
from tests.integration.test_integrated_care import ADMIN_LEUVEN, A
from tests.integration.test_web import web_of

pytestmark = pytest.mark.integration
PHARMACIST_OF_A_CLOSED_PHARMACY = "76102002274"
CLOSED_PHARMACY = "64099083"
DEAD = "36122402201"             # died 2026-09-14 (the demo's National Register)
REPLACED = "88431512423"         # a NISS the National Register replaced by 88031512434
VISA_EXPIRED = "57120502143"     # a doctor whose VISA ran until 2024-12-31
NURSE = "91052202203"            # Fontaine, a home nurse (NIHII 41214805404)
CITIZEN, PROVIDER, PHARMACIST, PSI_STAFF = Profile.CITIZEN, Profile.PROVIDER, Profile.PHARMACIST, Profile.PSI_STAFF


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    data = tmp_path_factory.mktemp("idp-entry") / "data"
    Platform.prepared(Settings(data_dir=data)).close()
    scenario = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    (pharmacist,) = [p for p in scenario["professionals"] if p["ssin"] == PHARMACIST_OF_A_CLOSED_PHARMACY]
    pharmacist["workplaces"] = [CLOSED_PHARMACY]
    (data / "scenario.json").write_text(json.dumps(scenario), encoding="utf-8")
    sandbox = Sandbox(Settings(data_dir=data, mutation_sync_seconds=3600, upstream_timeout_seconds=30),
                      reset_scenario=False)
    sandbox.start(0)
    support.trust(data)
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.mark.parametrize("ssin,profile,entered,refusal", [
    # §10: a patient by their NISS, a living person the National Register knows
    (A, CITIZEN, (Quality.CITIZEN, None), None),
    (ADMIN_LEUVEN, CITIZEN, (Quality.CITIZEN, None), None),        # PSI staff are citizens too
    (DEAD, CITIZEN, None, "no living person"),
    (REPLACED, CITIZEN, None, "no living person"),
    ("01010100126", CITIZEN, None, "no living person"),            # a valid NISS nobody has
    # §11: a care provider known in CoBrHa with a VISA valid today
    (support.DOCTOR_SSIN, PROVIDER, (Quality.DOCTOR, support.DOCTOR_NIHII), None),
    (NURSE, PROVIDER, (Quality.NURSE, "41214805404"), None),
    (VISA_EXPIRED, PROVIDER, None, "valid VISA"),
    (A, PROVIDER, None, "valid VISA"),                              # CoBrHa does not know a patient
    (support.PHARMACIST_SSIN, PROVIDER, None, "care provider"),     # a pharmacist enters as a pharmacist
    # §13: a pharmacist of a pharmacy open today
    (support.PHARMACIST_SSIN, PHARMACIST, (Quality.PHARMACIST, "61229665000"), None),
    (PHARMACIST_OF_A_CLOSED_PHARMACY, PHARMACIST, None, "open pharmacy"),
    (support.DOCTOR_SSIN, PHARMACIST, None, "open pharmacy"),       # a doctor is no pharmacist
    # §12: PSI staff with a role the AttributeAuthority gives them
    (ADMIN_LEUVEN, PSI_STAFF, (Quality.PSI_STAFF, None), None),
    ("73080202153", PSI_STAFF, (Quality.PSI_STAFF, None), None),    # a coordinator
    (A, PSI_STAFF, None, "no role"),
    (support.DOCTOR_SSIN, PSI_STAFF, None, "no role"),
])
def test_who_may_enter_follows_the_seed(box: Sandbox, ssin: str, profile: Profile,
                                        entered: tuple[Quality, str | None] | None, refusal: str | None) -> None:
    idp = web_of(box).idp
    if entered is None:
        with pytest.raises(AccessDenied) as refused:
            idp.identity(ssin, profile)
        assert refusal is not None and refusal in refused.value.reason
        return
    identity = idp.identity(ssin, profile)
    assert (identity.quality, identity.nihii, identity.ssin) == (*entered, ssin)


def test_a_person_the_seed_keeps_out_is_refused_with_a_right_code(box: Sandbox) -> None:
    url, idp = box.urls["web"], web_of(box).idp
    secret = idp.secrets.enrol(PHARMACIST_OF_A_CLOSED_PHARMACY).secret
    client = requests.Session()
    page = client.get(url + "signin", timeout=10)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    answer = client.post(url + "signin", timeout=10, data={
        "csrf": csrf.group(1), "ssin": PHARMACIST_OF_A_CLOSED_PHARMACY, "code": pyotp.TOTP(secret).now(),
        "profile": PHARMACIST.value})
    assert answer.status_code == 401 and "The sign-in failed" in answer.text and "pharmacy" not in answer.text
    assert client.get(url + "home", timeout=10, allow_redirects=False).status_code == 302   # no session
    row = [r for r in box.platform.audit.rows(limit=20) if r["operation"] == "SignIn"][-1]
    assert (row["service"], row["outcome"]) == ("idp", "DENIED")
    assert "may not enter as pharmacist" in str(row["detail"]) and "open" in str(row["detail"])
    assert PHARMACIST_OF_A_CLOSED_PHARMACY not in str(row)     # the NISS only as a pseudonym


def test_the_changed_scenario_is_the_running_one(box: Sandbox) -> None:
    """The fixture's change took (a row above refused for it would otherwise be refused for another reason)."""
    pro = web_of(box).idp.cobrha.professional(ssin=PHARMACIST_OF_A_CLOSED_PHARMACY)
    assert pro is not None and [p.workplaces for p in pro.professions] == [(CLOSED_PHARMACY,)]
    assert Path(box.settings.data_dir / "scenario.json").is_file()
