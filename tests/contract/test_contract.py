"""The contract (wsdl/ + xsd/) and the code stay together."""

from __future__ import annotations

import pathlib
import socket

import pytest
import requests
import zeep
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from lxml import etree

from mycarenet_ic import contract
from mycarenet_ic.app import STUBS, Platform, business_endpoints, stub_endpoints
from mycarenet_ic.persistence.tables import metadata
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.stubs.scenario import DEMO_FILE, Scenario

pytestmark = pytest.mark.contract

XS = "http://www.w3.org/2001/XMLSchema"
WSDLS = sorted(p.name for p in contract.WSDL_DIR.glob("*.wsdl"))
EXPECTED_OPERATIONS = {
    "sandbox-attributeauthority-v1.wsdl": {"hasTherapeuticLink", "getRoles"},
    "sandbox-cobrha-v1.wsdl": {"getProfessionalContactInfo", "getOrganizationContactInfo"},
    "sandbox-nationalregister-v1.wsdl": {"searchPersonBySsin", "consultMutations"},
    "mycarenet-integratedcare-v1.wsdl": {"declareInclusion", "consultInclusions", "modifyInclusion",
                                         "listProjectPatients"},
    # One operation: the audit log is never readable through a SOAP service.
    "mycarenet-memberdata-v1.wsdl": {"memberDataConsultation"},
    "mycarenet-tarification-v1.wsdl": {"tarificationConsultation"},
    "mycarenet-mediprima-tarification-v1.wsdl": {"tarificationConsultation"},
    "sandbox-sts-v1.wsdl": {"RequestSecurityToken"},
    # Encode only: the intermediary's second coding has no way back (seed 003).
    "sandbox-coding-v1.wsdl": {"encode"},
    # The eHealth ETK depot's one operation (ETEE).
    "sandbox-etkdepot-v1.wsdl": {"GetEtk"},
}


@pytest.fixture
def no_sockets_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: object, **_k: object) -> None:
        raise OSError("network forbidden in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_every_wsdl_is_covered() -> None:
    assert set(WSDLS) == set(EXPECTED_OPERATIONS)


@pytest.mark.parametrize("name", WSDLS)
def test_zeep_loads_wsdl_offline(name: str, no_sockets_at_all: None) -> None:
    settings = zeep.Settings(forbid_external=True, forbid_dtd=True, forbid_entities=True)
    client = zeep.Client(str(contract.wsdl_path(name)), settings=settings)
    ops = set()
    for service in client.wsdl.services.values():
        for port in service.ports.values():
            ops |= set(port.binding._operations)
    assert ops == EXPECTED_OPERATIONS[name]


def _types(root: etree._Element) -> dict[str, tuple[list[tuple[str, bool]], set[str]]]:
    """complexType name → (ordered child elements with 'repeats', attribute names)."""
    out = {}
    for ct in root.iter(f"{{{XS}}}complexType"):
        name = ct.get("name")
        if not name:
            continue
        elements = [
            (el.get("name"), el.get("maxOccurs", "1") not in ("1", "0"))
            for el in ct.iter(f"{{{XS}}}element")
        ]
        attrs = {a.get("name") for a in ct.iter(f"{{{XS}}}attribute")}
        out[name] = (elements, attrs)
    return out


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory: pytest.TempPathFactory):
    from mycarenet_ic.config import Settings

    plat = Platform.prepared(Settings(data_dir=tmp_path_factory.mktemp("drift")))
    try:
        # Gateways are built offline (WSDL from disk); nothing is called while the drift is compared.
        gateways = plat.gateways({name: "http://127.0.0.1:9/unused" for name in STUBS})
        yield {**stub_endpoints(plat, Scenario.load(DEMO_FILE)), **business_endpoints(plat, gateways)}
    finally:
        plat.close()


@pytest.mark.parametrize("service,xsd", [
    ("attribute-authority", "sandbox-attributeauthority-v1.xsd"),
    ("cobrha", "sandbox-cobrha-v1.xsd"),
    ("national-register", "sandbox-nationalregister-v1.xsd"),
    ("coding", "sandbox-coding-v1.xsd"),
    ("integrated-care", "mycarenet-integratedcare-v1.xsd"),
    # (MemberData reads and writes its XML itself, soap/commons.py: its answers are validated against xsd/ instead)
    ("tarification", "mycarenet-tarification-v1.xsd mycarenet-commons-protocol-v2.xsd mycarenet-commons-core-v2.xsd"),
    # Mediprima has the Tarification contract at its own address (as production's public clients call it)
    ("mediprima", "mycarenet-tarification-v1.xsd mycarenet-commons-protocol-v2.xsd mycarenet-commons-core-v2.xsd"),
])
def test_spyne_models_match_the_checked_in_schema(endpoints, service: str, xsd: str) -> None:
    from spyne.interface.wsdl import Wsdl11

    wsdl = Wsdl11(endpoints[service].spyne_app.interface)
    wsdl.build_interface_document("http://127.0.0.1/drift")
    generated = _types(etree.fromstring(wsdl.get_interface_document()))
    checked_in: dict[str, tuple[list[tuple[str, bool]], set[str]]] = {}
    for name in xsd.split():
        root = etree.parse(str(contract.XSD_DIR / name)).getroot()
        checked_in.update(_types(root))
        # Spyne binds the message to its base type: an extension that adds nothing has no model of its own.
        for ct in root.iter(f"{{{XS}}}complexType"):
            ext = ct.find(f"{{{XS}}}complexContent/{{{XS}}}extension")
            if ext is not None and len(ext) == 0:
                checked_in.pop(ct.get("name"), None)
    assert set(generated) == set(checked_in), "complex types differ"
    for name, (elements, attrs) in checked_in.items():
        assert generated[name] == (elements, attrs), name


def test_migrations_match_the_tables(tmp_path: pathlib.Path) -> None:
    from mycarenet_ic.persistence.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


@pytest.mark.integration
def test_wsdl_is_served_with_the_configured_address_not_the_host_header(sandbox: Sandbox) -> None:
    for name in ("attribute-authority", "cobrha", "national-register", "sts", "coding", "etk-depot"):
        url = sandbox.urls[name]
        resp = requests.get(url + "?wsdl", headers={"Host": "evil.example:666"}, timeout=10)
        assert resp.status_code == 200
        root = etree.fromstring(resp.content)
        locations = [a.get("location") for a in root.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address")]
        assert locations == [url]
        imports = [i.get("schemaLocation") for i in root.iter(f"{{{XS}}}import")]
        assert imports and all(i.startswith(url + "?xsd=") for i in imports)
        for loc in imports:
            xsd = requests.get(loc, timeout=10)
            assert xsd.status_code == 200
            assert etree.fromstring(xsd.content).tag == f"{{{XS}}}schema"
        # zeep fetches the WSDL and every schema it imports from the served URLs.
        client = zeep.Client(url + "?wsdl")
        assert client.wsdl.services


@pytest.mark.integration
def test_only_contract_files_are_served(sandbox: Sandbox) -> None:
    url = sandbox.urls["cobrha"]
    for bad in ("../setup.cfg", "..%2Fsetup.cfg", "/etc/passwd", "nothing.xsd"):
        assert requests.get(f"{url}?xsd={bad}", timeout=10).status_code == 404


# -- The served WSDL's WS-SecurityPolicy: the tokens the endpoint accepts ------------------------------------------
WSP = "http://schemas.xmlsoap.org/ws/2004/09/policy"
SP = "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702"
WSU_ID = "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd}Id"
_KIND_OF_TOKEN = {f"{{{SP}}}SamlToken": "saml-hok", f"{{{SP}}}X509Token": "x509"}


def _policy_kinds(root: etree._Element) -> list[set[str]]:
    """For each binding operation's input: the initiator token kinds of the policy it references (following
    references inside a policy, as an ExactlyOne of named policies has them)."""
    policies = {p.get(WSU_ID): p for p in root.findall(f"{{{WSP}}}Policy")}

    def kinds(uri: str | None) -> set[str]:
        assert uri and uri.startswith("#") and uri[1:] in policies, uri
        policy = policies[uri[1:]]
        found = {_KIND_OF_TOKEN[t.tag] for i in policy.iter(f"{{{SP}}}InitiatorToken")
                 for t in i.iter(*_KIND_OF_TOKEN)}
        for ref in policy.iter(f"{{{WSP}}}PolicyReference"):
            found |= kinds(ref.get("URI"))
        return found

    inputs = root.findall(f"{{{WSDL_NS}}}binding/{{{WSDL_NS}}}operation/{{{WSDL_NS}}}input")
    assert inputs
    return [kinds(ref.get("URI")) for i in inputs for ref in i.findall(f"{{{WSP}}}PolicyReference")]


@pytest.mark.integration
def test_served_wsdls_state_the_policy_of_the_tokens_each_endpoint_accepts(sandbox: Sandbox) -> None:
    services = list(sandbox.soap_urls)
    for name in services:
        root = etree.fromstring(requests.get(sandbox.urls[name] + "?wsdl", timeout=10).content)
        accepted = {kind.value for kind in sandbox.platform.incoming_verifier(name).accepted}
        operations = root.findall(f"{{{WSDL_NS}}}binding/{{{WSDL_NS}}}operation")
        assert _policy_kinds(root) == [accepted] * len(operations), name
    # The default: the business services take both (the STS an identity certificate only).
    memberdata = etree.fromstring(requests.get(sandbox.urls["memberdata"] + "?wsdl", timeout=10).content)
    assert _policy_kinds(memberdata) == [{"saml-hok", "x509"}]
    hok = next(p for p in memberdata.findall(f"{{{WSP}}}Policy") if p.get(WSU_ID) == "SAML_HOK")
    binding = hok.find(f"{{{SP}}}AsymmetricBinding/{{{WSP}}}Policy")
    assert binding is not None
    for assertion in ("IncludeTimestamp", "OnlySignEntireHeadersAndBody"):
        assert binding.find(f"{{{SP}}}{assertion}") is not None
    assert hok.find(f".//{{{SP}}}SamlToken/{{{WSP}}}Policy/{{{SP}}}WssSamlV11Token10") is not None
    assert hok.find(f"{{{SP}}}SignedParts/{{{SP}}}Body") is not None
    sts = etree.fromstring(requests.get(sandbox.urls["sts"] + "?wsdl", timeout=10).content)
    assert _policy_kinds(sts) == [{"x509"}]
    # zeep ignores policies: the served WSDLs with them still load and name their operations.
    for name in ("memberdata", "integrated-care", "tarification"):
        client = zeep.Client(sandbox.urls[name] + "?wsdl")
        assert [op for svc in client.wsdl.services.values() for port in svc.ports.values()
                for op in port.binding._operations]
    # The checked-in files stay as they are: the policy is the configuration's.
    assert WSP not in contract.wsdl_path("mycarenet-memberdata-v1.wsdl").read_text()


def test_a_sandbox_taking_only_sts_tokens_serves_only_the_saml_policy(tmp_path: pathlib.Path) -> None:
    from mycarenet_ic.config import Settings

    plat = Platform.prepared(Settings(data_dir=tmp_path / "data", accepted_tokens="saml-hok"))
    try:
        gateways = plat.gateways({name: "http://127.0.0.1:9/unused" for name in STUBS})  # nothing is called
        for name, endpoint in {**business_endpoints(plat, gateways),
                               **stub_endpoints(plat, Scenario.load(DEMO_FILE))}.items():
            endpoint.address = f"https://127.0.0.1:9/{name}"
            status: list[str] = []
            body = b"".join(endpoint({"REQUEST_METHOD": "GET", "QUERY_STRING": "wsdl"},
                                     lambda s, headers, status=status: status.append(s)))
            assert status == ["200 OK"]
            root = etree.fromstring(body)
            ids = {p.get(WSU_ID) for p in root.findall(f"{{{WSP}}}Policy")}
            if name == "sts":  # production's STS takes an identity certificate
                assert set().union(*_policy_kinds(root)) == {"x509"}
            elif name in STUBS:  # the other stubs take either kind, whatever the business services take
                assert set().union(*_policy_kinds(root)) == {"x509", "saml-hok"}
            else:
                assert set().union(*_policy_kinds(root)) == {"saml-hok"} and ids == {"SAML_HOK"}, name
    finally:
        plat.close()


# -- Tarification / Mediprima: the official contract's names ---------------------------------------------------
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
TAR_NS = "urn:be:fgov:ehealth:mycarenet:tarification:protocol:v1"


def _wsdl_names(name: str) -> dict[str, object]:
    root = etree.parse(str(contract.wsdl_path(name))).getroot()
    w, soap = f"{{{WSDL_NS}}}", "{http://schemas.xmlsoap.org/wsdl/soap/}"
    return {
        "targetNamespace": root.get("targetNamespace"),
        "portTypes": sorted(p.get("name") for p in root.iter(f"{w}portType")),
        "bindings": sorted((b.get("name"), b.get("type")) for b in root.iter(f"{w}binding")),
        "services": sorted((s.get("name"), p.get("name"), p.get("binding"))
                           for s in root.iter(f"{w}service") for p in s.iter(f"{w}port")),
        "operations": sorted((o.get("name"), o.find(f"{soap}operation").get("soapAction"))
                             for b in root.iter(f"{w}binding") for o in b.iter(f"{w}operation")),
        "messages": sorted((m.get("name"), m.find(f"{w}part").get("element"))
                           for m in root.iter(f"{w}message")),
    }


@pytest.mark.parametrize("name", ["mycarenet-tarification-v1.wsdl", "mycarenet-mediprima-tarification-v1.wsdl"])
def test_tarification_wsdls_have_the_official_names(name: str) -> None:
    """MyCareNetTarification_v1.wsdl (e-Contract/mycarenet): the names a generated client binds to; Mediprima
    is the same contract at another address."""
    assert _wsdl_names(name) == {
        "targetNamespace": TAR_NS,
        "portTypes": ["MycarenetTarificationPortType"],
        "bindings": [("MycarenetTarificationSOAPBinding", "tns:MycarenetTarificationPortType")],
        "services": [("MycarenetTarificationService", "MycarenetTarifationServiceSOAP11",
                      "tns:MycarenetTarificationSOAPBinding")],
        "operations": [("tarificationConsultation", f"{TAR_NS}:TarificationConsult")],
        "messages": [("BusinessError", "soa:BusinessError"), ("SystemError", "soa:SystemError"),
                     ("TarificationConsultationRequest", "tns:TarificationConsultationRequest"),
                     ("TarificationConsultationResponse", "tns:TarificationConsultationResponse")],
    }
    schema = etree.parse(str(contract.XSD_DIR / "mycarenet-tarification-v1.xsd")).getroot()
    elements = {(e.get("name"), e.get("type")) for e in schema.iter(f"{{{XS}}}element")}
    assert elements == {("TarificationConsultationRequest", "p2:SendRequestType"),
                        ("TarificationConsultationResponse", "p2:SendResponseType")}
    assert {i.get("namespace") for i in schema.iter(f"{{{XS}}}import")} == {
        "urn:be:fgov:ehealth:mycarenet:commons:protocol:v2"}
