"""Injected faults over real sockets (services/fault_injection.py through the admin API): what a zeep client
sees is what production's equivalent shows — the SystemError fault with Retry true, an HTTP 503, a reset
connection, a late answer — for N requests or a period, for one patient or one caller; each audited and
recorded by the inspector as injected; the CLI; the admin API's OpenAPI document against its routes."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import zeep
import zeep.exceptions
from zeep.transports import Transport

from mycarenet_ic import contract, ns
from mycarenet_ic.clients.gateways import CachingNationalRegister
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.errors import UpstreamFault, UpstreamUnavailable
from mycarenet_ic.inspector.store import InspectorStore, QueuedRecorder
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.pki import KeyPair
from mycarenet_ic.security.wssec import Signer
from mycarenet_ic.stubs.admin import ScenarioAdmin, admin_token
from mycarenet_ic.stubs.admin_openapi import document
from tests import support
from tests.conftest import holder

pytestmark = pytest.mark.integration

NR = "national-register"
OTHER_NIHII = "61229665000"  # the pharmacist of the demo scenario (support.PHARMACIST_SSIN)


def admin(sandbox: Sandbox, method: str, path: str, payload: Any = None, token: bool = True) -> tuple[int, Any]:
    base = sandbox.urls["scenario-admin"].rstrip("/")
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {admin_token(sandbox.settings.data_dir)}"
    resp = requests.request(method, base + path, data=None if payload is None else json.dumps(payload),
                            headers=headers, timeout=10)
    return resp.status_code, resp.json()


def inject(sandbox: Sandbox, **rule: Any) -> dict[str, Any]:
    status, answer = admin(sandbox, "POST", "/scenario/faults", rule)
    assert status == 201, answer
    return dict(answer["fault"])


@pytest.fixture(autouse=True)
def _no_faults_left(sandbox: Sandbox) -> Iterator[None]:
    yield
    admin(sandbox, "DELETE", "/scenario/faults")


def nr_service(sandbox: Sandbox, keypair: KeyPair) -> Any:
    """A plain zeep client of the National Register stub, signing as ``keypair`` (what an integrator writes)."""
    session = requests.Session()
    session.verify = os.environ["REQUESTS_CA_BUNDLE"]
    client = zeep.Client(str(contract.wsdl_path("sandbox-nationalregister-v1.wsdl")),
                         transport=Transport(session=session, timeout=30),
                         wsse=Signer(keypair, verifier=sandbox.platform.answer_verifier()))
    return client.create_service(f"{{{ns.SANDBOX_NATIONAL_REGISTER}}}NationalRegisterSoapBinding", sandbox.urls[NR])


def search(service: Any, ssin: str = support.PATIENT_LINKED) -> Any:
    return service.searchPersonBySsin(Id=f"_{secrets.token_hex(8)}",
                                      IssueInstant=dt.datetime.now(dt.UTC).replace(microsecond=0),
                                      Criteria={"Ssin": ssin})


@pytest.fixture(scope="module")
def doctor_nr(sandbox: Sandbox, doctor: KeyPair) -> Any:
    return nr_service(sandbox, doctor)


@pytest.fixture(scope="module")
def other_nr(sandbox: Sandbox) -> Any:
    return nr_service(sandbox, holder(sandbox, Quality.PHARMACIST, ssin=support.PHARMACIST_SSIN, nihii=OTHER_NIHII))


def found(answer: Any) -> bool:
    return answer.Person is not None and answer.Person.Ssin == support.PATIENT_LINKED


def nr_rows(sandbox: Sandbox, before: int) -> list[dict[str, Any]]:
    return support.service_rows_since(sandbox, NR, before)


def audit_count(sandbox: Sandbox) -> int:
    return len(sandbox.platform.audit.rows(limit=1_000_000))


def system_error(exc: zeep.exceptions.Fault) -> dict[str, str]:
    assert exc.detail is not None
    error = exc.detail[0]
    return {child.tag.rpartition("}")[2]: child.text or "" for child in error} | {"kind": error.tag.rpartition("}")[2]}


def test_a_system_error_with_retry_n_times_then_the_answer(sandbox: Sandbox, doctor_nr: Any) -> None:
    rule = inject(sandbox, effect="system-error", service=NR, operation="searchPersonBySsin", times=2)
    before = audit_count(sandbox)
    for _ in range(2):
        with pytest.raises(zeep.exceptions.Fault) as caught:
            search(doctor_nr)
        detail = system_error(caught.value)
        assert caught.value.code == "soap:Server"
        assert detail["kind"] == "SystemError" and detail["Code"] == "SOA-02002" and detail["Retry"] == "true"
        assert detail["Origin"] and detail["Environment"] == sandbox.settings.environment
    assert found(search(doctor_nr))  # the third is answered: the rule is used up
    rows = nr_rows(sandbox, before)
    assert [r["outcome"] for r in rows] == ["ERROR", "ERROR", "OK"]
    assert all(f"injected fault {rule['id']}: system-error" in r["detail"] for r in rows[:2])
    status, listed = admin(sandbox, "GET", "/scenario/faults")
    assert status == 200 and listed == {"faults": []}


def test_http_503_as_a_load_balancer_says_it(sandbox: Sandbox, doctor_nr: Any) -> None:
    inject(sandbox, effect="http-503", service=NR)
    before = audit_count(sandbox)
    with pytest.raises(zeep.exceptions.TransportError) as caught:
        search(doctor_nr)
    assert caught.value.status_code == 503 and caught.value.content == b"Service Unavailable\n"
    assert found(search(doctor_nr))
    rows = nr_rows(sandbox, before)
    assert rows[0]["outcome"] == "ERROR" and "injected fault" in rows[0]["detail"] and "http-503" in rows[0]["detail"]


def test_a_dropped_connection_is_a_reset_without_an_answer(sandbox: Sandbox, doctor_nr: Any) -> None:
    inject(sandbox, effect="drop", service=NR)
    before = audit_count(sandbox)
    with pytest.raises(requests.ConnectionError) as caught:
        search(doctor_nr)
    chain: list[BaseException] = []
    error: BaseException | None = caught.value
    while error is not None and len(chain) < 10:
        chain.append(error)
        error = error.__context__ or error.__cause__ or (error.args[0] if error.args and isinstance(
            error.args[0], BaseException) else None)
    assert any(isinstance(e, ConnectionResetError) for e in chain) or "reset" in str(caught.value).lower(), chain
    assert found(search(doctor_nr))  # a new connection is served again
    rows = nr_rows(sandbox, before)
    assert rows[0]["outcome"] == "ERROR" and "drop" in rows[0]["detail"]


def test_a_delay_answers_as_usual_later_and_says_so(sandbox: Sandbox, doctor_nr: Any) -> None:
    inject(sandbox, effect="delay", delay_ms=400, service=NR)
    before = audit_count(sandbox)
    started = time.monotonic()
    assert found(search(doctor_nr))
    assert time.monotonic() - started >= 0.4
    rows = nr_rows(sandbox, before)
    assert rows[0]["outcome"] == "OK" and "[injected fault" in rows[0]["detail"] and "delay 400 ms" in rows[0]["detail"]


def test_for_a_period_every_request_until_cleared(sandbox: Sandbox, doctor_nr: Any) -> None:
    rule = inject(sandbox, effect="http-503", service=NR, for_seconds=3600)
    assert "times" not in rule and rule["until"] > dt.datetime.now(dt.UTC).isoformat()
    for _ in range(3):
        with pytest.raises(zeep.exceptions.TransportError):
            search(doctor_nr)
    assert admin(sandbox, "DELETE", f"/scenario/faults/{rule['id']}") == (200, {"removed": 1})
    assert found(search(doctor_nr))
    assert admin(sandbox, "DELETE", f"/scenario/faults/{rule['id']}")[0] == 404


def test_a_period_already_over_faults_nothing(sandbox: Sandbox, doctor_nr: Any) -> None:
    inject(sandbox, effect="http-503", service=NR, until="2020-01-01T00:00:00Z")
    assert found(search(doctor_nr))


def test_only_for_the_chosen_patient(sandbox: Sandbox, doctor_nr: Any) -> None:
    inject(sandbox, effect="system-error", service=NR, patient=support.PATIENT_LINKED, times=5)
    other = search(doctor_nr, support.PATIENT_UNLINKED)
    assert other.Person is not None and other.Person.Ssin == support.PATIENT_UNLINKED
    with pytest.raises(zeep.exceptions.Fault):
        search(doctor_nr)


def test_only_for_the_chosen_caller(sandbox: Sandbox, doctor_nr: Any, other_nr: Any) -> None:
    inject(sandbox, effect="system-error", service=NR, caller=support.DOCTOR_NIHII, times=5)
    assert found(search(other_nr))
    with pytest.raises(zeep.exceptions.Fault):
        search(doctor_nr)
    admin(sandbox, "DELETE", "/scenario/faults")
    inject(sandbox, effect="system-error", service=NR, caller=OTHER_NIHII, times=5)
    assert found(search(doctor_nr))
    with pytest.raises(zeep.exceptions.Fault):
        search(other_nr)


def test_another_operation_or_service_is_not_touched(sandbox: Sandbox, doctor_nr: Any) -> None:
    inject(sandbox, effect="drop", service=NR, operation="consultMutations", times=5)
    inject(sandbox, effect="drop", service="cobrha", times=5)
    assert found(search(doctor_nr))


def test_the_inspector_records_each_injected_fault_as_injected(sandbox: Sandbox, doctor_nr: Any) -> None:
    recorder = sandbox.platform.recorder
    assert isinstance(recorder, QueuedRecorder)
    store = InspectorStore.of(sandbox.settings)
    try:
        recorder.flush()
        newest = store.newest_id()
        for effect in ("system-error", "http-503", "drop"):
            inject(sandbox, effect=effect, service=NR)
            with pytest.raises((zeep.exceptions.Fault, zeep.exceptions.TransportError, requests.ConnectionError)):
                search(doctor_nr)
        inject(sandbox, effect="delay", delay_ms=1, service=NR)
        search(doctor_nr)
        recorder.flush()
        seen = [e for e in (store.get(s.id) for s in store.list(after=newest, limit=100) if s.id) if e is not None]
    finally:
        store.close()
    mine = [e for e in seen if e.service == NR]
    assert [(e.status, e.outcome) for e in mine] == [(500, "ERROR"), (503, "ERROR"), (0, "ERROR"), (200, "OK")]
    assert all(e.reason and "injected fault" in e.reason for e in mine), [e.reason for e in mine]
    assert mine[1].answer == b"Service Unavailable\n" and mine[2].answer == b""


def test_the_scenario_file_keeps_the_rules(sandbox: Sandbox) -> None:
    rule = inject(sandbox, effect="drop", service="memberdata", times=3, id="kept")
    saved = json.loads((sandbox.settings.data_dir / "scenario.json").read_text())
    assert saved["faults"] == [rule]


@pytest.mark.parametrize(("rule", "says"), [
    ({"effect": "boom"}, "effect must be one of"),
    ({"effect": "drop", "patient": "12345678901"}, "patient must be a valid NISS"),
    ({"effect": "drop", "extra": 1}, "unknown field"),
])
def test_a_bad_rule_is_a_400_saying_why_and_nothing_is_injected(sandbox: Sandbox, rule: dict[str, Any],
                                                                says: str) -> None:
    status, answer = admin(sandbox, "POST", "/scenario/faults", rule)
    assert status == 400 and says in answer["error"]
    assert admin(sandbox, "GET", "/scenario/faults") == (200, {"faults": []})


def test_the_fault_routes_need_the_token(sandbox: Sandbox) -> None:
    for method, path in (("GET", "/scenario/faults"), ("POST", "/scenario/faults"), ("DELETE", "/scenario/faults")):
        status, _ = admin(sandbox, method, path, {"effect": "drop"} if method == "POST" else None, token=False)
        assert status == 401
    assert admin(sandbox, "GET", "/scenario/faults") == (200, {"faults": []})


def test_the_cli_injects_and_clears_faults(sandbox: Sandbox, doctor_nr: Any) -> None:
    done = support.sandbox_cli(sandbox, "scenario", "inject", "--effect", "system-error", "--service", NR,
                               "--operation", "searchPersonBySsin", "--patient", support.PATIENT_LINKED,
                               "--times", "3", "--id", "from-cli")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["fault"]["id"] == "from-cli"
    with pytest.raises(zeep.exceptions.Fault):
        search(doctor_nr)
    listed = support.sandbox_cli(sandbox, "scenario", "faults")
    assert listed.returncode == 0 and json.loads(listed.stdout)["faults"][0]["times"] == 2
    cleared = support.sandbox_cli(sandbox, "scenario", "clear-faults")
    assert cleared.returncode == 0 and json.loads(cleared.stdout) == {"removed": 1}
    assert found(search(doctor_nr))
    bad = support.sandbox_cli(sandbox, "scenario", "inject", "--effect", "delay", "--service", NR)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "delay_ms" in bad.stderr


def test_every_admin_route_is_in_the_openapi_document_and_back(sandbox: Sandbox) -> None:
    base = sandbox.urls["scenario-admin"].rstrip("/")
    resp = requests.get(base + "/openapi.json", timeout=10)  # no token: the document is public
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    served = resp.json()
    assert served["openapi"].startswith("3.") and served["servers"] == [{"url": base}]
    documented = {(method.upper(), path) for path, ops in served["paths"].items() for method in ops}
    routes = {(method, path) for method, path, _, _ in ScenarioAdmin.ROUTES}
    assert documented == routes
    assert served["paths"] == document()["paths"]
    # every documented route is served (not the unknown path's 404), and something undocumented is not
    for method, path in sorted(documented):
        concrete = path.replace("{id}", "nope")
        status, answer = admin(sandbox, method, concrete, {} if method == "POST" else None)
        assert not (status == 404 and answer == {"error": "unknown admin path"}), (method, path)
    for method, path in (("PUT", "/scenario"), ("GET", "/scenario/faults/x"), ("POST", "/openapi.json"),
                         ("GET", "/scenario/faults/x/y")):
        assert admin(sandbox, method, path, {} if method in ("PUT", "POST") else None) == (
            404, {"error": "unknown admin path"}), (method, path)


def test_the_platforms_national_register_lookup_turns_each_failure_into_an_upstream_error(sandbox: Sandbox) -> None:
    # The lookup each declaration makes (lxml over the signed contract, not zeep): a fault, an HTTP error
    # without a SOAP answer and a reset each become the platform's error, never a person.
    register = sandbox.platform.gateways(sandbox.urls).national_register
    lookup = register.inner.person if isinstance(register, CachingNationalRegister) else register.person
    inject(sandbox, effect="system-error", service=NR, operation="searchPersonBySsin", times=1)
    with pytest.raises(UpstreamFault) as fault:
        lookup(support.PATIENT_LINKED)
    assert "fault soap:Server" in str(fault.value.reason)
    inject(sandbox, effect="http-503", service=NR, times=1)
    with pytest.raises(UpstreamFault) as unavailable:
        lookup(support.PATIENT_LINKED)
    assert "TransportError" in str(unavailable.value.reason)
    inject(sandbox, effect="drop", service=NR, times=1)
    with pytest.raises(UpstreamUnavailable):
        lookup(support.PATIENT_LINKED)
    person = lookup(support.PATIENT_LINKED)  # the rules used up: answered, verified, read
    assert person is not None and person.last_name == "Peeters"
