"""CoBrHa stub (Addressbook-shaped): professionals by SSIN or NIHII, organisations by NIHII or CBE."""

from __future__ import annotations

from spyne import Boolean, ComplexModel, Date, DateTime, ServiceBase, Unicode, XmlAttribute, XmlData, rpc

from mycarenet_ic import ns
from mycarenet_ic.soap.endpoint import EndpointDeps, SoapEndpoint
from mycarenet_ic.soap.service import build_endpoint, call_of, reply_attributes

from .scenario import PROFESSIONS, Organisation, Professional, Scenario, iso_date

NS = ns.SANDBOX_COBRHA


class _Model(ComplexModel):
    __namespace__ = NS


class StatusCode(_Model):
    __type_name__ = "StatusCodeType"
    _type_info = [("Value", XmlAttribute(Unicode))]


class Status(_Model):
    __type_name__ = "StatusType"
    _type_info = [("StatusCode", StatusCode), ("StatusMessage", Unicode)]


class Profession(_Model):
    __type_name__ = "ProfessionType"
    _type_info = [("ProfessionCode", Unicode), ("ProfessionFriendlyName", Unicode), ("NIHII", Unicode)]


class Visa(_Model):
    __type_name__ = "VisaType"
    _type_info = [("ValidFrom", Date), ("ValidTo", Date)]


class Workplace(_Model):
    __type_name__ = "WorkplaceType"
    _type_info = [("OrganizationNIHII", Unicode), ("OrganizationTypeCode", Unicode)]


class ProfessionalInformation(_Model):
    __type_name__ = "ProfessionalInformationType"
    _type_info = [("Profession", Profession), ("Visa", Visa),
                  ("Workplace", Workplace.customize(max_occurs="unbounded"))]


class IndividualContactInformation(_Model):
    __type_name__ = "IndividualContactInformationType"
    _type_info = [
        ("SSIN", Unicode),
        ("LastName", Unicode),
        ("FirstName", Unicode),
        ("Language", Unicode),
        ("Gender", Unicode),
        ("ProfessionalInformation", ProfessionalInformation.customize(max_occurs="unbounded")),
    ]


class OrganizationId(_Model):
    __type_name__ = "OrganizationIdType"
    _type_info = [("authenticSource", XmlAttribute(Unicode)), ("value", XmlData(Unicode))]


class OrganizationContactInformation(_Model):
    __type_name__ = "OrganizationContactInformationType"
    _type_info = [
        ("Id", OrganizationId.customize(max_occurs="unbounded")),
        ("OrganizationTypeCode", Unicode),
        ("Name", Unicode),
        ("Active", Boolean),
        ("ActiveFrom", Date),
        ("ActiveTo", Date),
    ]


class GetProfessionalContactInfoRequest(_Model):
    __type_name__ = "GetProfessionalContactInfoRequestType"
    _type_info = [("Id", XmlAttribute(Unicode)), ("IssueInstant", XmlAttribute(DateTime)),
                  ("SSIN", Unicode), ("NIHII", Unicode)]


class GetProfessionalContactInfoResponse(_Model):
    __type_name__ = "GetProfessionalContactInfoResponseType"
    _type_info = [
        ("Id", XmlAttribute(Unicode)), ("InResponseTo", XmlAttribute(Unicode)),
        ("IssueInstant", XmlAttribute(DateTime)),
        ("Status", Status), ("IndividualContactInformation", IndividualContactInformation),
    ]


class GetOrganizationContactInfoRequest(_Model):
    __type_name__ = "GetOrganizationContactInfoRequestType"
    _type_info = [("Id", XmlAttribute(Unicode)), ("IssueInstant", XmlAttribute(DateTime)),
                  ("NIHII", Unicode), ("CBE", Unicode)]


class GetOrganizationContactInfoResponse(_Model):
    __type_name__ = "GetOrganizationContactInfoResponseType"
    _type_info = [
        ("Id", XmlAttribute(Unicode)), ("InResponseTo", XmlAttribute(Unicode)),
        ("IssueInstant", XmlAttribute(DateTime)),
        ("Status", Status), ("OrganizationContactInformation", OrganizationContactInformation),
    ]


def _status(found: bool) -> Status:
    return Status(StatusCode=StatusCode(Value=ns.EHEALTH_STATUS_SUCCESS if found else ns.EHEALTH_STATUS_NOT_FOUND),
                  StatusMessage=None if found else "No match")


def _professional_info(pro: Professional, scenario: Scenario) -> ProfessionalInformation:
    code, friendly = PROFESSIONS[pro.profession]
    workplaces = []
    for nihii in pro.workplaces:
        org = scenario.organisation(nihii=nihii)
        if org is not None:
            workplaces.append(Workplace(OrganizationNIHII=org.nihii, OrganizationTypeCode=org.type))
    return ProfessionalInformation(
        Profession=Profession(ProfessionCode=code, ProfessionFriendlyName=friendly, NIHII=pro.nihii),
        Visa=Visa(ValidFrom=iso_date(pro.visa_from), ValidTo=iso_date(pro.visa_to)),
        Workplace=workplaces or None,
    )


def _organisation_info(org: Organisation) -> OrganizationContactInformation:
    return OrganizationContactInformation(
        Id=[OrganizationId(authenticSource="NIHII", value=org.nihii),
            OrganizationId(authenticSource="CBE", value=org.cbe)],
        OrganizationTypeCode=org.type,
        Name=org.name,
        Active=org.active,
        ActiveFrom=iso_date(org.active_from),
        ActiveTo=iso_date(org.active_to),
    )


def make_service(scenario: Scenario) -> type[ServiceBase]:
    class Cobrha(ServiceBase):
        @rpc(GetProfessionalContactInfoRequest, _body_style="bare", _returns=GetProfessionalContactInfoResponse,
             _in_message_name="GetProfessionalContactInfoRequest",
             _out_message_name="GetProfessionalContactInfoResponse")
        def getProfessionalContactInfo(ctx, request):  # noqa: N805
            """Handles ``GetProfessionalContactInfoRequest``."""
            call = call_of(ctx)
            pros = []
            if request.SSIN:
                pros = scenario.professionals_of(request.SSIN)
            elif request.NIHII:
                found = scenario.professional(nihii=request.NIHII)
                pros = [found] if found else []
            call.audit.detail = f"found={len(pros)}"
            info = None
            if pros:
                person = scenario.person(pros[0].ssin)
                assert person is not None  # the scenario validates this on load
                info = IndividualContactInformation(
                    SSIN=person.ssin, LastName=person.last_name, FirstName=" ".join(person.first_names),
                    Language=pros[0].language, Gender=person.sex,
                    ProfessionalInformation=[_professional_info(p, scenario) for p in pros],
                )
            return GetProfessionalContactInfoResponse(
                **reply_attributes(request), Status=_status(bool(pros)), IndividualContactInformation=info)

        @rpc(GetOrganizationContactInfoRequest, _body_style="bare", _returns=GetOrganizationContactInfoResponse,
             _in_message_name="GetOrganizationContactInfoRequest",
             _out_message_name="GetOrganizationContactInfoResponse")
        def getOrganizationContactInfo(ctx, request):  # noqa: N805
            """Handles ``GetOrganizationContactInfoRequest``."""
            call = call_of(ctx)
            org = scenario.organisation(nihii=request.NIHII, cbe=request.CBE)
            call.audit.detail = f"found={'yes' if org else 'no'}"
            return GetOrganizationContactInfoResponse(
                **reply_attributes(request), Status=_status(org is not None),
                OrganizationContactInformation=_organisation_info(org) if org else None)

    return Cobrha


def build(scenario: Scenario, deps: EndpointDeps) -> SoapEndpoint:
    return build_endpoint("cobrha", [make_service(scenario)], NS, "sandbox-cobrha-v1.xsd",
                          "sandbox-cobrha-v1.wsdl", deps)
