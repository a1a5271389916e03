"""Integrated Care over SOAP: Spyne models mirroring ``xsd/mycarenet-integratedcare-v1.xsd`` and thin
endpoints that hand plain commands to :class:`mycarenet_ic.services.integrated_care.IntegratedCare`."""

from __future__ import annotations

from typing import Any

from spyne import Boolean, ComplexModel, Date, DateTime, Integer, ServiceBase, Unicode, XmlAttribute, rpc

from mycarenet_ic import ns
from mycarenet_ic.domain.inclusions import Consent, Inclusion, Status
from mycarenet_ic.domain.records import Person
from mycarenet_ic.services.integrated_care import (
    Declaration,
    IntegratedCare,
    Modification,
    WriteOutcome,
)
from mycarenet_ic.services.requesters import Claim, Requester
from mycarenet_ic.soap.endpoint import EndpointDeps, SoapEndpoint
from mycarenet_ic.soap.service import build_endpoint, call_of, reply_attributes, requester

NS = ns.INTEGRATED_CARE


class _Model(ComplexModel):
    __namespace__ = NS


class License(_Model):
    __type_name__ = "LicenseType"
    _type_info = [("Username", Unicode), ("Password", Unicode)]


class Package(_Model):
    __type_name__ = "PackageType"
    _type_info = [("Name", Unicode), ("License", License)]


class NihiiInfo(_Model):
    __type_name__ = "NihiiInfoType"
    _type_info = [("Quality", Unicode), ("Value", Unicode)]


class CareProvider(_Model):
    __type_name__ = "CareProviderType"
    _type_info = [("Nihii", NihiiInfo), ("Ssin", Unicode)]


class Origin(_Model):
    __type_name__ = "OriginType"
    _type_info = [("Package", Package), ("CareProvider", CareProvider)]


class CommonInput(_Model):
    __type_name__ = "CommonInputType"
    _type_info = [("IsTest", Boolean), ("Origin", Origin), ("InputReference", Unicode)]


class CommonOutput(_Model):
    __type_name__ = "CommonOutputType"
    _type_info = [("InputReference", Unicode), ("OutputReference", Unicode)]


class Patient(_Model):
    __type_name__ = "PatientType"
    _type_info = [("Ssin", Unicode)]


class PatientIdentity(_Model):
    __type_name__ = "PatientIdentityType"
    _type_info = [("Ssin", Unicode), ("LastName", Unicode), ("FirstName", Unicode), ("BirthDate", Date),
                  ("DeceasedDate", Date)]


class ConsentModel(_Model):
    __type_name__ = "ConsentType"
    _type_info = [("Agreement", Unicode), ("Date", Date)]


class ConsentInput(_Model):
    """The consent as a request gives it: a missing part is the service's CONSENT_INCOMPLETE, not a schema error."""

    __type_name__ = "ConsentInputType"
    _type_info = [("Agreement", Unicode), ("Date", Date)]


class InclusionModel(_Model):
    __type_name__ = "InclusionType"
    _type_info = [
        ("InclusionId", Unicode), ("Project", Unicode), ("Status", Unicode), ("DeclaredStartDate", Date),
        ("StartDate", Date), ("DeclaredEndDate", Date), ("EndDate", Date), ("ClosedByDeath", Boolean),
        ("ClosureReason", Unicode), ("Consent", ConsentModel), ("Provider", Unicode), ("Operator", Unicode),
        ("Version", Integer),
    ]


class ProjectPatient(_Model):
    __type_name__ = "ProjectPatientType"
    _type_info = [("Patient", PatientIdentity), ("Inclusion", InclusionModel)]


_REQUEST_ATTRS = [("Id", XmlAttribute(Unicode)), ("IssueInstant", XmlAttribute(DateTime))]
_RESPONSE_ATTRS = [("Id", XmlAttribute(Unicode)), ("InResponseTo", XmlAttribute(Unicode)),
                   ("IssueInstant", XmlAttribute(DateTime))]


class DeclareInclusionRequest(_Model):
    __type_name__ = "DeclareInclusionRequestType"
    _type_info = [*_REQUEST_ATTRS, ("CommonInput", CommonInput), ("Patient", Patient), ("Project", Unicode),
                  ("Status", Unicode), ("StartDate", Date), ("Consent", ConsentInput)]


class DeclareInclusionResponse(_Model):
    __type_name__ = "DeclareInclusionResponseType"
    _type_info = [*_RESPONSE_ATTRS, ("CommonOutput", CommonOutput), ("Inclusion", InclusionModel)]


class ConsultInclusionsRequest(_Model):
    __type_name__ = "ConsultInclusionsRequestType"
    _type_info = [*_REQUEST_ATTRS, ("CommonInput", CommonInput), ("Patient", Patient)]


class ConsultInclusionsResponse(_Model):
    __type_name__ = "ConsultInclusionsResponseType"
    _type_info = [*_RESPONSE_ATTRS, ("CommonOutput", CommonOutput), ("Patient", PatientIdentity),
                  ("Inclusion", InclusionModel.customize(max_occurs="unbounded")),
                  ("PrincipalInclusionElsewhere", Boolean)]


class ModifyInclusionRequest(_Model):
    __type_name__ = "ModifyInclusionRequestType"
    _type_info = [*_REQUEST_ATTRS, ("CommonInput", CommonInput), ("Patient", Patient), ("InclusionId", Unicode),
                  ("Status", Unicode), ("StartDate", Date), ("EndDate", Date), ("Consent", ConsentInput)]


class ModifyInclusionResponse(_Model):
    __type_name__ = "ModifyInclusionResponseType"
    _type_info = [*_RESPONSE_ATTRS, ("CommonOutput", CommonOutput), ("Inclusion", InclusionModel)]


class ListProjectPatientsRequest(_Model):
    __type_name__ = "ListProjectPatientsRequestType"
    _type_info = [*_REQUEST_ATTRS, ("CommonInput", CommonInput), ("Project", Unicode), ("Offset", Integer),
                  ("MaxResults", Integer)]


class ListProjectPatientsResponse(_Model):
    __type_name__ = "ListProjectPatientsResponseType"
    _type_info = [*_RESPONSE_ATTRS, ("CommonOutput", CommonOutput), ("Total", Integer),
                  ("ProjectPatient", ProjectPatient.customize(max_occurs="unbounded")), ("MoreAvailable", Boolean)]


# -- conversions ------------------------------------------------------------------------------------

def _caller(ctx: Any, common: CommonInput) -> Requester:
    provider = common.Origin.CareProvider if common.Origin else None
    nihii = provider.Nihii.Value if provider is not None and provider.Nihii is not None else None
    return requester(call_of(ctx), Claim(nihii, provider.Ssin if provider is not None else None))


def _output(common: CommonInput, answer_id: str) -> CommonOutput:
    return CommonOutput(InputReference=common.InputReference, OutputReference=answer_id)


def _inclusion(inc: Inclusion) -> InclusionModel:
    return InclusionModel(
        InclusionId=inc.id, Project=inc.project, Status=inc.status.value, DeclaredStartDate=inc.declared_start,
        StartDate=inc.start, DeclaredEndDate=inc.declared_end, EndDate=inc.end,
        ClosedByDeath=True if inc.closed_by_death else None,
        ClosureReason=inc.closure.value if inc.closure else None,
        Consent=ConsentModel(Agreement=inc.consent.value, Date=inc.consent_date) if inc.consent else None,
        Provider=inc.provider_nihii, Operator=inc.operator, Version=inc.version,
    )


def _identity(ssin: str, person: Person | None) -> PatientIdentity:
    if person is None:
        return PatientIdentity(Ssin=ssin)
    return PatientIdentity(Ssin=ssin, LastName=person.last_name, FirstName=" ".join(person.first_names),
                           BirthDate=person.birth_date, DeceasedDate=person.death_date)


def _consent(model: ConsentInput | None) -> tuple[Consent | None, Any]:
    if model is None:
        return None, None
    return (Consent(model.Agreement) if model.Agreement else None), model.Date


def _written(ctx: Any, outcome: WriteOutcome) -> None:
    call_of(ctx).audit.detail = outcome.audit_detail


def make_service(ic: IntegratedCare) -> type[ServiceBase]:
    class IntegratedCareService(ServiceBase):
        @rpc(DeclareInclusionRequest, _body_style="bare", _returns=DeclareInclusionResponse,
             _in_message_name="DeclareInclusionRequest", _out_message_name="DeclareInclusionResponse")
        def declareInclusion(ctx, request):  # noqa: N805
            """Handles ``DeclareInclusionRequest``."""
            call_of(ctx).audit.patient = request.Patient.Ssin
            consent, consent_date = _consent(request.Consent)
            outcome = ic.declare(_caller(ctx, request.CommonInput), request.Id, Declaration(
                request.Patient.Ssin, request.Project, Status(request.Status), request.StartDate, consent,
                consent_date))
            _written(ctx, outcome)
            return DeclareInclusionResponse(
                Id=outcome.answer_id, InResponseTo=request.Id, IssueInstant=outcome.answered_at,
                CommonOutput=_output(request.CommonInput, outcome.answer_id), Inclusion=_inclusion(outcome.inclusion))

        @rpc(ConsultInclusionsRequest, _body_style="bare", _returns=ConsultInclusionsResponse,
             _in_message_name="ConsultInclusionsRequest", _out_message_name="ConsultInclusionsResponse")
        def consultInclusions(ctx, request):  # noqa: N805
            """Handles ``ConsultInclusionsRequest``."""
            call = call_of(ctx)
            call.audit.patient = request.Patient.Ssin
            found = ic.consult(_caller(ctx, request.CommonInput), request.Patient.Ssin)
            call.audit.detail = found.audit_detail
            reply = reply_attributes(request)
            return ConsultInclusionsResponse(
                **reply, CommonOutput=_output(request.CommonInput, reply["Id"]),
                Patient=_identity(found.patient_ssin, found.patient),
                Inclusion=[_inclusion(i) for i in found.inclusions],
                PrincipalInclusionElsewhere=found.principal_elsewhere)

        @rpc(ModifyInclusionRequest, _body_style="bare", _returns=ModifyInclusionResponse,
             _in_message_name="ModifyInclusionRequest", _out_message_name="ModifyInclusionResponse")
        def modifyInclusion(ctx, request):  # noqa: N805
            """Handles ``ModifyInclusionRequest``: only the elements present change."""
            call_of(ctx).audit.patient = request.Patient.Ssin
            consent, consent_date = _consent(request.Consent)
            outcome = ic.modify(_caller(ctx, request.CommonInput), request.Id, Modification(
                request.Patient.Ssin, request.InclusionId, Status(request.Status) if request.Status else None,
                request.StartDate, request.EndDate, consent, consent_date))
            _written(ctx, outcome)
            return ModifyInclusionResponse(
                Id=outcome.answer_id, InResponseTo=request.Id, IssueInstant=outcome.answered_at,
                CommonOutput=_output(request.CommonInput, outcome.answer_id), Inclusion=_inclusion(outcome.inclusion))

        @rpc(ListProjectPatientsRequest, _body_style="bare", _returns=ListProjectPatientsResponse,
             _in_message_name="ListProjectPatientsRequest", _out_message_name="ListProjectPatientsResponse")
        def listProjectPatients(ctx, request):  # noqa: N805
            """Handles ``ListProjectPatientsRequest``: one page of the project's current patients."""
            page = ic.list_patients(_caller(ctx, request.CommonInput), request.Project, request.Offset or 0,
                                    request.MaxResults or 20)
            call_of(ctx).audit.detail = page.audit_detail
            reply = reply_attributes(request)
            return ListProjectPatientsResponse(
                **reply, CommonOutput=_output(request.CommonInput, reply["Id"]), Total=page.total,
                ProjectPatient=[ProjectPatient(Patient=_identity(p.ssin, p.person), Inclusion=_inclusion(p.inclusion))
                                for p in page.patients],
                MoreAvailable=page.more)

    return IntegratedCareService


def build(ic: IntegratedCare, deps: EndpointDeps) -> SoapEndpoint:
    return build_endpoint("integrated-care", [make_service(ic)], NS, "mycarenet-integratedcare-v1.xsd",
                          "mycarenet-integratedcare-v1.wsdl", deps)
