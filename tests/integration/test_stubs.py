"""The three stubs over real HTTP on 127.0.0.1, called through the zeep gateways (signed both ways)."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from mycarenet_ic import contract
from mycarenet_ic.app import Gateways
from mycarenet_ic.domain.records import PersonMutation
from mycarenet_ic.errors import UpstreamUnavailable
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.wssec import Signer, Verifier
from tests import support

pytestmark = pytest.mark.integration

TODAY = dt.date(2026, 11, 1)


@pytest.fixture(scope="module")
def gw(sandbox: Sandbox) -> Gateways:
    return sandbox.platform.gateways(sandbox.urls)


def test_attribute_authority_says_yes_for_a_scenario_link(gw: Gateways) -> None:
    link = gw.attribute_authority.therapeutic_link(support.PATIENT_LINKED, support.DOCTOR_NIHII, "persphysician", TODAY)
    assert link is not None and link.link_type == "persphysician" and link.start == dt.date(2024, 1, 1)


def test_attribute_authority_says_no_for_a_missing_link(gw: Gateways) -> None:
    assert gw.attribute_authority.therapeutic_link(
        support.PATIENT_UNLINKED, support.DOCTOR_NIHII, "persphysician", TODAY) is None


def test_links_have_dates_and_types(gw: Gateways, sandbox: Sandbox) -> None:
    ended = next(lk for lk in sandbox.scenario.links if lk.end)
    inside = dt.date.fromisoformat(ended.start) + dt.timedelta(days=1)
    after = dt.date.fromisoformat(ended.end) + dt.timedelta(days=1)
    assert gw.attribute_authority.therapeutic_link(ended.patient, ended.hcparty, ended.type, inside) is not None
    assert gw.attribute_authority.therapeutic_link(ended.patient, ended.hcparty, ended.type, after) is None
    # the link of a pharmacy is an orgpharmacy link, not the pharmacist's own
    assert gw.attribute_authority.therapeutic_link(support.PATIENT_LINKED, support.PHARMACY_NIHII,
                                                   "orgpharmacy", TODAY) is not None
    assert gw.attribute_authority.therapeutic_link(support.PATIENT_LINKED, support.DOCTOR_NIHII,
                                                   "persnurse", TODAY) is None


def test_cobrha_professionals_and_visa(gw: Gateways) -> None:
    doctor = gw.cobrha.professional(nihii=support.DOCTOR_NIHII)
    assert doctor is not None and doctor.ssin == support.DOCTOR_SSIN and doctor.last_name == "Verhoeven"
    assert doctor.professions[0].code == "persphysician" and doctor.professions[0].visa_valid_on(TODAY)
    expired = gw.cobrha.professional(nihii=support.EXPIRED_VISA_NIHII)
    assert expired is not None and not expired.professions[0].visa_valid_on(TODAY)
    assert expired.professions[0].visa_to == dt.date(2024, 12, 31)
    pharmacist = gw.cobrha.professional(ssin=support.PHARMACIST_SSIN)
    assert pharmacist is not None and pharmacist.professions[0].workplaces == (support.PHARMACY_NIHII,)
    assert gw.cobrha.professional(nihii="19999922003") is None


def test_cobrha_organisations(gw: Gateways, sandbox: Sandbox) -> None:
    pharmacy = gw.cobrha.organisation(nihii=support.PHARMACY_NIHII)
    assert pharmacy is not None and pharmacy.type == "pharmacy" and pharmacy.active_on(TODAY)
    assert pharmacy.cbe and len(pharmacy.cbe) == 10
    assert gw.cobrha.organisation(cbe=pharmacy.cbe) == pharmacy
    closed = gw.cobrha.organisation(nihii=support.CLOSED_PHARMACY_NIHII)
    assert closed is not None and not closed.active_on(TODAY)
    psis = [o for o in sandbox.scenario.organisations.values() if o.type == "psi"]
    assert len(psis) >= 3
    for psi in psis:
        found = gw.cobrha.organisation(nihii=psi.nihii)
        assert found is not None and found.type == "psi" and found.active == psi.active


def test_national_register_person(gw: Gateways) -> None:
    person = gw.national_register.person(support.PATIENT_LINKED)
    assert person is not None and (person.last_name, person.first_names) == ("Peeters", ("Jan", "Pieter"))
    assert person.birth_date == dt.date(1948, 3, 12) and person.sex == "male" and person.death_date is None
    dead = gw.national_register.person(support.DECEASED)
    assert dead is not None and dead.death_date == dt.date(2026, 9, 14)
    old = gw.national_register.person(support.BIS_REPLACED)
    assert old is not None and old.replaced_by == support.REPLACEMENT
    assert gw.national_register.person("85073003328") is None


def test_mutation_feed_returns_each_mutation_once(gw: Gateways, sandbox: Sandbox) -> None:
    seen: list[PersonMutation] = []
    cursor = 0
    for _ in range(20):
        batch = gw.national_register.mutations_after(cursor, max_results=1)
        seen.extend(batch.mutations)
        assert batch.last_seq >= cursor
        cursor = batch.last_seq
        if not batch.more:
            break
    assert [m.seq for m in seen] == [m.seq for m in sandbox.scenario.mutations]
    kinds = {(m.kind, m.ssin, m.new_ssin) for m in seen}
    assert ("Deceased", support.DECEASED, None) in kinds
    assert ("SsinReplaced", support.BIS_REPLACED, support.REPLACEMENT) in kinds
    again = gw.national_register.mutations_after(cursor)
    assert again.mutations == () and again.last_seq == cursor and not again.more
    # A change made while running shows up once, after the cursor.
    sandbox.scenario.apply({"action": "death", "ssin": support.PATIENT_UNLINKED, "date": "2026-11-02"})
    fresh = gw.national_register.mutations_after(cursor)
    assert [(m.kind, m.ssin) for m in fresh.mutations] == [("Deceased", support.PATIENT_UNLINKED)]
    assert gw.national_register.mutations_after(fresh.last_seq).mutations == ()


def test_scenario_link_added_while_running(gw: Gateways, sandbox: Sandbox) -> None:
    patient = "99123102247"  # Van Damme Louise
    assert gw.attribute_authority.therapeutic_link(patient, support.DOCTOR_NIHII, "persphysician", TODAY) is None
    sandbox.scenario.apply({"action": "add-link", "patient": patient, "hcparty": support.DOCTOR_NIHII,
                            "type": "persphysician", "start": "2026-10-01"})
    assert gw.attribute_authority.therapeutic_link(patient, support.DOCTOR_NIHII, "persphysician", TODAY) is not None


def test_raw_answer_is_signed_by_the_service_and_follows_the_schema(
        sandbox: Sandbox, doctor_signer: Signer, answer_verifier: Verifier) -> None:
    answer = support.post(sandbox.urls["attribute-authority"],
                          support.to_bytes(support.signed(doctor_signer, support.aa_body())))
    assert answer.status == 200 and answer.root is not None
    verified = answer_verifier.verify(answer.root)
    assert "CBE=attribute-authority" in verified.certificate.subject.rfc4514_string()
    payload = verified.body[0]
    assert contract.schema("sandbox-attributeauthority-v1.xsd").validate(payload), payload
    assert payload.findtext(f"{{{support.AA_NS}}}HasLink") == "true"


@pytest.mark.parametrize("service,body", [
    ("cobrha", f'<ab:GetOrganizationContactInfoRequest xmlns:ab="{support.AB_NS}" Id="_o1" '
               f'IssueInstant="2026-11-01T10:00:00Z"><ab:NIHII>{support.PHARMACY_NIHII}</ab:NIHII>'
               "</ab:GetOrganizationContactInfoRequest>"),
    ("cobrha", f'<ab:GetProfessionalContactInfoRequest xmlns:ab="{support.AB_NS}" Id="_p1" '
               f'IssueInstant="2026-11-01T10:00:00Z"><ab:SSIN>{support.PHARMACIST_SSIN}</ab:SSIN>'
               "</ab:GetProfessionalContactInfoRequest>"),
    ("national-register", f'<rn:SearchPersonBySsinRequest xmlns:rn="{support.RN_NS}" Id="_s1" '
                          f'IssueInstant="2026-11-01T10:00:00Z"><rn:Criteria><rn:Ssin>{support.DECEASED}</rn:Ssin>'
                          "</rn:Criteria></rn:SearchPersonBySsinRequest>"),
    ("national-register", f'<rn:ConsultMutationsRequest xmlns:rn="{support.RN_NS}" Id="_m1" '
                          'IssueInstant="2026-11-01T10:00:00Z"><rn:SequenceNumber>0</rn:SequenceNumber>'
                          "</rn:ConsultMutationsRequest>"),
])
def test_hand_built_requests_get_schema_valid_answers(sandbox: Sandbox, doctor_signer: Signer,
                                                      answer_verifier: Verifier, service: str, body: str) -> None:
    answer = support.post(sandbox.urls[service], support.to_bytes(support.signed(doctor_signer, body)))
    assert answer.status == 200, answer.body[:400]
    payload = answer_verifier.verify(answer.root).body[0]
    xsd = {"cobrha": "sandbox-cobrha-v1.xsd", "national-register": "sandbox-nationalregister-v1.xsd"}[service]
    schema = contract.schema(xsd)
    assert schema.validate(payload), schema.error_log
    assert etree.QName(payload).localname.endswith("Response")
    assert payload.get("InResponseTo") == etree.fromstring(body).get("Id")


def test_stub_down_is_a_clean_upstream_error(sandbox: Sandbox) -> None:
    from mycarenet_ic.clients.gateways import ZeepAttributeAuthorityGateway
    from mycarenet_ic.server import ServedApp

    # A port that was just free and is closed again: nothing listens there.
    probe = ServedApp("probe", lambda e, s: [], port=0)
    url = probe.url
    probe.server.stop()
    gateway = ZeepAttributeAuthorityGateway(url, sandbox.platform.signer("mycarenet"),
                                            sandbox.platform.answer_verifier(), timeout=2)
    with pytest.raises(UpstreamUnavailable):
        gateway.therapeutic_link(support.PATIENT_LINKED, support.DOCTOR_NIHII, "persphysician", TODAY)
