"""AttributeAuthority stub: is there a therapeutic link between a provider (or pharmacy) and a patient?"""

from __future__ import annotations

from spyne import Boolean, ComplexModel, Date, DateTime, ServiceBase, Unicode, XmlAttribute, rpc

from mycarenet_ic import ns
from mycarenet_ic.soap.endpoint import EndpointDeps, SoapEndpoint
from mycarenet_ic.soap.service import build_endpoint, call_of, reply_attributes

from .scenario import Scenario, iso_date

NS = ns.SANDBOX_ATTRIBUTE_AUTHORITY


class _Model(ComplexModel):
    __namespace__ = NS


class Patient(_Model):
    __type_name__ = "PatientType"
    _type_info = [("Ssin", Unicode)]


class HcParty(_Model):
    __type_name__ = "HcPartyType"
    _type_info = [("Nihii", Unicode), ("Type", Unicode)]


class Acknowledge(_Model):
    __type_name__ = "AcknowledgeType"
    _type_info = [("IsComplete", Boolean)]


class TherapeuticLink(_Model):
    __type_name__ = "TherapeuticLinkType"
    _type_info = [("Type", Unicode), ("StartDate", Date), ("EndDate", Date)]


class HasTherapeuticLinkRequest(_Model):
    __type_name__ = "HasTherapeuticLinkRequestType"
    _type_info = [
        ("Id", XmlAttribute(Unicode)),
        ("IssueInstant", XmlAttribute(DateTime)),
        ("Patient", Patient),
        ("HcParty", HcParty),
        ("Date", Date),
    ]


class HasTherapeuticLinkResponse(_Model):
    __type_name__ = "HasTherapeuticLinkResponseType"
    _type_info = [
        ("Id", XmlAttribute(Unicode)),
        ("InResponseTo", XmlAttribute(Unicode)),
        ("IssueInstant", XmlAttribute(DateTime)),
        ("Acknowledge", Acknowledge),
        ("HasLink", Boolean),
        ("TherapeuticLink", TherapeuticLink),
    ]


class Role(_Model):
    __type_name__ = "RoleType"
    _type_info = [("Organization", Unicode), ("Role", Unicode)]


class GetRolesRequest(_Model):
    __type_name__ = "GetRolesRequestType"
    _type_info = [("Id", XmlAttribute(Unicode)), ("IssueInstant", XmlAttribute(DateTime)), ("Ssin", Unicode)]


class GetRolesResponse(_Model):
    __type_name__ = "GetRolesResponseType"
    _type_info = [
        ("Id", XmlAttribute(Unicode)),
        ("InResponseTo", XmlAttribute(Unicode)),
        ("IssueInstant", XmlAttribute(DateTime)),
        ("Role", Role.customize(max_occurs="unbounded")),
    ]


def make_service(scenario: Scenario) -> type[ServiceBase]:
    class AttributeAuthority(ServiceBase):
        @rpc(HasTherapeuticLinkRequest, _body_style="bare", _returns=HasTherapeuticLinkResponse,
             _in_message_name="HasTherapeuticLinkRequest", _out_message_name="HasTherapeuticLinkResponse")
        def hasTherapeuticLink(ctx, request):  # noqa: N805 - spyne passes the context first
            """Handles ``HasTherapeuticLinkRequest``."""
            call = call_of(ctx)
            call.audit.patient = request.Patient.Ssin
            link = scenario.link(request.Patient.Ssin, request.HcParty.Nihii, request.Date)
            if link is not None and link.type != request.HcParty.Type:
                link = None
            call.audit.detail = f"hcparty={request.HcParty.Nihii} link={'yes' if link else 'no'}"
            return HasTherapeuticLinkResponse(
                **reply_attributes(request),
                Acknowledge=Acknowledge(IsComplete=True),
                HasLink=link is not None,
                TherapeuticLink=None if link is None else TherapeuticLink(
                    Type=link.type, StartDate=iso_date(link.start), EndDate=iso_date(link.end)),
            )

        @rpc(GetRolesRequest, _body_style="bare", _returns=GetRolesResponse,
             _in_message_name="GetRolesRequest", _out_message_name="GetRolesResponse")
        def getRoles(ctx, request):  # noqa: N805
            """Handles ``GetRolesRequest``: the person's roles in organisations (PSI staff)."""
            call = call_of(ctx)
            roles = scenario.roles_of(request.Ssin)
            call.audit.detail = f"roles={len(roles)}"
            return GetRolesResponse(**reply_attributes(request),
                                    Role=[Role(Organization=r.psi, Role=r.role) for r in roles])

    return AttributeAuthority


def build(scenario: Scenario, deps: EndpointDeps) -> SoapEndpoint:
    return build_endpoint("attribute-authority", [make_service(scenario)], NS,
                          "sandbox-attributeauthority-v1.xsd", "sandbox-attributeauthority-v1.wsdl", deps)
