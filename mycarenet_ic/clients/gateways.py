"""Gateways to AttributeAuthority, CoBrHa, the National Register and the coding service, returning domain
records."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.clients.base import SignedSoapClient
from mycarenet_ic.config import Settings
from mycarenet_ic.domain.records import (
    MutationBatch,
    Organisation,
    OrganisationRole,
    Person,
    PersonMutation,
    Profession,
    Professional,
    TherapeuticLink,
)
from mycarenet_ic.errors import UpstreamFault
from mycarenet_ic.security.wssec import Signer, Verifier


def _found(status: Any) -> bool:
    return status is not None and status.StatusCode.Value == ns.EHEALTH_STATUS_SUCCESS


class ZeepAttributeAuthorityGateway:
    def __init__(self, address: str, signer: Signer, verifier: Verifier,
                 timeout: float = Settings.upstream_timeout_seconds, ca_file: Path | None = None) -> None:
        self._client = SignedSoapClient(
            "sandbox-attributeauthority-v1.wsdl",
            f"{{{ns.SANDBOX_ATTRIBUTE_AUTHORITY}}}AttributeAuthoritySoapBinding",
            address, signer, verifier, timeout, ca_file=ca_file)

    def therapeutic_link(self, patient_ssin: str, hcparty_nihii: str, hcparty_type: str,
                         on: dt.date) -> TherapeuticLink | None:
        answer = self._client.call("hasTherapeuticLink", Patient={"Ssin": patient_ssin},
                                   HcParty={"Nihii": hcparty_nihii, "Type": hcparty_type}, Date=on)
        if not answer.HasLink or answer.TherapeuticLink is None:
            return None
        link = answer.TherapeuticLink
        return TherapeuticLink(link.Type, link.StartDate, link.EndDate)

    def roles(self, ssin: str) -> tuple[OrganisationRole, ...]:
        answer = self._client.call("getRoles", Ssin=ssin)
        return tuple(OrganisationRole(r.Organization, r.Role) for r in (answer.Role or []))


class ZeepCobrhaGateway:
    def __init__(self, address: str, signer: Signer, verifier: Verifier,
                 timeout: float = Settings.upstream_timeout_seconds, ca_file: Path | None = None) -> None:
        self._client = SignedSoapClient(
            "sandbox-cobrha-v1.wsdl", f"{{{ns.SANDBOX_COBRHA}}}CobrhaSoapBinding",
            address, signer, verifier, timeout, ca_file=ca_file)

    def professional(self, *, ssin: str | None = None, nihii: str | None = None) -> Professional | None:
        if (ssin is None) == (nihii is None):
            raise ValueError("give exactly one of ssin, nihii")
        answer = self._client.call("getProfessionalContactInfo", **({"SSIN": ssin} if ssin else {"NIHII": nihii}))
        info = answer.IndividualContactInformation
        if not _found(answer.Status) or info is None:
            return None
        professions = tuple(
            Profession(
                code=p.Profession.ProfessionCode,
                nihii=p.Profession.NIHII,
                visa_from=p.Visa.ValidFrom if p.Visa else None,
                visa_to=p.Visa.ValidTo if p.Visa else None,
                workplaces=tuple(w.OrganizationNIHII for w in (p.Workplace or [])),
            )
            for p in info.ProfessionalInformation or []
        )
        return Professional(info.SSIN, info.LastName, info.FirstName, professions)

    def organisation(self, *, nihii: str | None = None, cbe: str | None = None) -> Organisation | None:
        if (nihii is None) == (cbe is None):
            raise ValueError("give exactly one of nihii, cbe")
        answer = self._client.call("getOrganizationContactInfo", **({"NIHII": nihii} if nihii else {"CBE": cbe}))
        info = answer.OrganizationContactInformation
        if not _found(answer.Status) or info is None:
            return None
        ids = {i.authenticSource: i._value_1 for i in info.Id}
        return Organisation(ids.get("NIHII"), ids.get("CBE"), info.OrganizationTypeCode, info.Name, info.Active,
                            info.ActiveFrom, info.ActiveTo)


class ZeepNationalRegisterGateway:
    def __init__(self, address: str, signer: Signer, verifier: Verifier,
                 timeout: float = Settings.upstream_timeout_seconds, ca_file: Path | None = None) -> None:
        self._client = SignedSoapClient(
            "sandbox-nationalregister-v1.wsdl", f"{{{ns.SANDBOX_NATIONAL_REGISTER}}}NationalRegisterSoapBinding",
            address, signer, verifier, timeout, ca_file=ca_file)

    def person(self, ssin: str) -> Person | None:
        # Asked for each new patient of a declaration: the request and the answer in lxml, not through zeep.
        rn = f"{{{ns.SANDBOX_NATIONAL_REGISTER}}}"
        header = self._client.header()
        request = etree.Element(f"{rn}SearchPersonBySsinRequest", nsmap={"rn": ns.SANDBOX_NATIONAL_REGISTER},
                                Id=header["Id"], IssueInstant=header["IssueInstant"].isoformat())
        etree.SubElement(etree.SubElement(request, f"{rn}Criteria"), f"{rn}Ssin").text = ssin
        answer = self._client.exchange("searchPersonBySsin", request,
                                       f"{ns.SANDBOX_NATIONAL_REGISTER}:SearchPersonBySsin")
        code = answer.find(f"{rn}Status/{rn}StatusCode")
        p = answer.find(f"{rn}Person")
        if code is None or code.get("Value") != ns.EHEALTH_STATUS_SUCCESS or p is None:
            return None

        def day(text: str | None) -> dt.date | None:
            return dt.date.fromisoformat(text.strip()[:10]) if text else None

        data = p.find(f"{rn}PersonData")
        assert data is not None  # the schema requires it
        return Person(p.findtext(f"{rn}Ssin", ""), data.findtext(f"{rn}LastName", ""),
                      tuple(f.text or "" for f in data.findall(f"{rn}FirstName")),
                      day(data.findtext(f"{rn}BirthDate")), data.findtext(f"{rn}Gender", ""),
                      day(data.findtext(f"{rn}DeceaseDate")), p.findtext(f"{rn}ReplacedBy"))

    def mutations_after(self, seq: int, max_results: int = 100) -> MutationBatch:
        answer = self._client.call("consultMutations", SequenceNumber=seq, MaxResults=max_results)
        mutations = tuple(
            PersonMutation(m.SequenceNumber, m.MutationInformation.Type, m.Person.Ssin, m.MutationInformation.Date,
                           m.Person.NewSsin)
            # zeep reads an empty <MutationList/> as None
            for m in ((answer.MutationList.Mutation if answer.MutationList else None) or [])
        )
        return MutationBatch(mutations, answer.Header.SequenceNumber, bool(answer.MoreAvailable))


class ZeepCodingGateway:
    """The intermediary's second coding (seed 003 art. 1): insurer-coded values in, one meaningless number
    each out, per research project; at most ``BATCH`` values a call (the schema's bound)."""

    BATCH = 1000

    def __init__(self, address: str, signer: Signer, verifier: Verifier,
                 timeout: float = Settings.upstream_timeout_seconds, ca_file: Path | None = None) -> None:
        self._client = SignedSoapClient(
            "sandbox-coding-v1.wsdl", f"{{{ns.SANDBOX_CODING}}}CodingSoapBinding",
            address, signer, verifier, timeout, ca_file=ca_file)

    def encode(self, project: str, values: Sequence[str]) -> list[str]:
        """The codes of ``values``, in their order."""
        if len(values) > self.BATCH:
            raise ValueError(f"at most {self.BATCH} values a call")
        if not values:
            return []
        answer = self._client.call("encode", ProjectName=project,
                                   Value=[{"Id": str(n), "_value_1": v} for n, v in enumerate(values)])
        coded = {c.Id: c._value_1 for c in (answer.CodedValue or [])}
        if answer.ProjectName != project or set(coded) != {str(n) for n in range(len(values))}:
            raise UpstreamFault(reason=f"{self._client.address} encode: the answer does not code each value once")
        return [coded[str(n)] for n in range(len(values))]


class CachingCobrha:
    """CoBrHa answers kept for ``ttl`` seconds, per question (not-found answers too).

    Who is a provider, a pharmacy or a PSI, and their VISA, change on the scale of days; every
    Integrated Care, MemberData and Tarification call asks it, so the answers are reused.
    """

    def __init__(self, inner: ZeepCobrhaGateway, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str | None, str | None], tuple[float, Any]] = {}

    def _cached(self, key: tuple[str, str | None, str | None], fetch: Callable[[], Any]) -> Any:
        now = self._clock()
        with self._lock:
            hit = self._answers.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        value = fetch()
        with self._lock:
            if len(self._answers) > 10_000:
                self._answers.clear()
            self._answers[key] = (now + self.ttl, value)
        return value

    def professional(self, *, ssin: str | None = None, nihii: str | None = None) -> Professional | None:
        return self._cached(("pro", ssin, nihii), lambda: self.inner.professional(ssin=ssin, nihii=nihii))

    def organisation(self, *, nihii: str | None = None, cbe: str | None = None) -> Organisation | None:
        return self._cached(("org", nihii, cbe), lambda: self.inner.organisation(nihii=nihii, cbe=cbe))


class CachingNationalRegister:
    """National Register persons kept for ``ttl`` seconds; a person is forgotten as soon as a mutation
    about them (NISS replaced, death) passes through :meth:`mutations_after`, so the layer never
    answers from an identity it knows to be outdated."""

    def __init__(self, inner: ZeepNationalRegisterGateway, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._persons: dict[str, tuple[float, Person | None]] = {}

    def person(self, ssin: str) -> Person | None:
        now = self._clock()
        with self._lock:
            hit = self._persons.get(ssin)
            if hit is not None and hit[0] > now:
                return hit[1]
        found = self.inner.person(ssin)
        with self._lock:
            if len(self._persons) > 50_000:
                self._persons.clear()
            self._persons[ssin] = (now + self.ttl, found)
        return found

    def forget(self, *ssins: str | None) -> None:
        with self._lock:
            for ssin in ssins:
                if ssin:
                    self._persons.pop(ssin, None)

    def mutations_after(self, seq: int, max_results: int = 100) -> MutationBatch:
        batch = self.inner.mutations_after(seq, max_results)
        for m in batch.mutations:
            self.forget(m.ssin, m.new_ssin)
        return batch
