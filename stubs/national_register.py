"""National Register stub: persons by NISS, and an incremental mutation feed (NISS replaced, deaths)."""

from __future__ import annotations

import datetime as dt

from spyne import Boolean, ComplexModel, Date, DateTime, Integer, Long, ServiceBase, Unicode, XmlAttribute, rpc

from mycarenet_ic import ns
from mycarenet_ic.soap.endpoint import EndpointDeps, SoapEndpoint
from mycarenet_ic.soap.service import build_endpoint, call_of, reply_attributes

from .scenario import Mutation as ScenarioMutation
from .scenario import Scenario, iso_date

NS = ns.SANDBOX_NATIONAL_REGISTER
DEFAULT_BATCH = 100


class _Model(ComplexModel):
    __namespace__ = NS


class StatusCode(_Model):
    __type_name__ = "StatusCodeType"
    _type_info = [("Value", XmlAttribute(Unicode))]


class Status(_Model):
    __type_name__ = "StatusType"
    _type_info = [("StatusCode", StatusCode), ("StatusMessage", Unicode)]


class Criteria(_Model):
    __type_name__ = "CriteriaType"
    _type_info = [("Ssin", Unicode)]


class PersonData(_Model):
    __type_name__ = "PersonDataType"
    _type_info = [
        ("LastName", Unicode),
        ("FirstName", Unicode(max_occurs=3)),
        ("BirthDate", Date),
        ("Gender", Unicode),
        ("DeceaseDate", Date),
    ]


class Person(_Model):
    __type_name__ = "PersonType"
    _type_info = [("Ssin", Unicode), ("ReplacedBy", Unicode), ("PersonData", PersonData)]


class SearchPersonBySsinRequest(_Model):
    __type_name__ = "SearchPersonBySsinRequestType"
    _type_info = [("Id", XmlAttribute(Unicode)), ("IssueInstant", XmlAttribute(DateTime)), ("Criteria", Criteria)]


class SearchPersonBySsinResponse(_Model):
    __type_name__ = "SearchPersonBySsinResponseType"
    _type_info = [
        ("Id", XmlAttribute(Unicode)), ("InResponseTo", XmlAttribute(Unicode)),
        ("IssueInstant", XmlAttribute(DateTime)),
        ("Status", Status), ("Person", Person),
    ]


class FeedHeader(_Model):
    __type_name__ = "FeedHeaderType"
    _type_info = [("ApplicationId", Unicode), ("Date", DateTime), ("SequenceNumber", Long), ("Environment", Unicode)]


class MutationInformation(_Model):
    __type_name__ = "MutationInformationType"
    _type_info = [("Author", Unicode), ("Type", Unicode), ("Description", Unicode), ("Date", Date)]


class MutationPerson(_Model):
    __type_name__ = "MutationPersonType"
    _type_info = [("Ssin", Unicode), ("NewSsin", Unicode), ("DeceaseDate", Date)]


class Mutation(_Model):
    __type_name__ = "MutationType"
    _type_info = [("SequenceNumber", Long), ("MutationInformation", MutationInformation), ("Person", MutationPerson)]


class MutationList(_Model):
    __type_name__ = "MutationListType"
    _type_info = [("Mutation", Mutation.customize(max_occurs="unbounded"))]


class ConsultMutationsRequest(_Model):
    __type_name__ = "ConsultMutationsRequestType"
    _type_info = [("Id", XmlAttribute(Unicode)), ("IssueInstant", XmlAttribute(DateTime)),
                  ("SequenceNumber", Long), ("MaxResults", Integer)]


class ConsultMutationsResponse(_Model):
    __type_name__ = "ConsultMutationsResponseType"
    _type_info = [
        ("Id", XmlAttribute(Unicode)), ("InResponseTo", XmlAttribute(Unicode)),
        ("IssueInstant", XmlAttribute(DateTime)),
        ("Header", FeedHeader), ("MutationList", MutationList), ("MoreAvailable", Boolean),
    ]


def _mutation(m: ScenarioMutation) -> Mutation:
    return Mutation(
        SequenceNumber=m.seq,
        MutationInformation=MutationInformation(Author="National Register (sandbox)", Type=m.type,
                                                Description=m.description, Date=iso_date(m.date)),
        Person=MutationPerson(Ssin=m.ssin, NewSsin=m.new_ssin,
                              DeceaseDate=iso_date(m.date) if m.type == "Deceased" else None),
    )


def make_service(scenario: Scenario, environment: str) -> type[ServiceBase]:
    class NationalRegister(ServiceBase):
        @rpc(SearchPersonBySsinRequest, _body_style="bare", _returns=SearchPersonBySsinResponse,
             _in_message_name="SearchPersonBySsinRequest", _out_message_name="SearchPersonBySsinResponse")
        def searchPersonBySsin(ctx, request):  # noqa: N805
            """Handles ``SearchPersonBySsinRequest``."""
            call = call_of(ctx)
            ssin = request.Criteria.Ssin
            call.audit.patient = ssin
            person = scenario.person(ssin)
            call.audit.detail = f"found={'yes' if person else 'no'}"
            found = None
            if person is not None:
                found = Person(
                    Ssin=person.ssin, ReplacedBy=person.replaced_by,
                    PersonData=PersonData(LastName=person.last_name, FirstName=person.first_names[:3],
                                          BirthDate=iso_date(person.birth_date), Gender=person.sex,
                                          DeceaseDate=iso_date(person.death_date)),
                )
            return SearchPersonBySsinResponse(
                **reply_attributes(request),
                Status=Status(StatusCode=StatusCode(Value=ns.EHEALTH_STATUS_SUCCESS if found
                                                    else ns.EHEALTH_STATUS_NOT_FOUND),
                              StatusMessage=None if found else "No person with this SSIN"),
                Person=found)

        @rpc(ConsultMutationsRequest, _body_style="bare", _returns=ConsultMutationsResponse,
             _in_message_name="ConsultMutationsRequest", _out_message_name="ConsultMutationsResponse")
        def consultMutations(ctx, request):  # noqa: N805
            """Handles ``ConsultMutationsRequest``: what follows ``SequenceNumber``, in order."""
            call = call_of(ctx)
            limit = request.MaxResults or DEFAULT_BATCH
            batch, more = scenario.mutations_after(request.SequenceNumber, limit)
            last = batch[-1].seq if batch else request.SequenceNumber
            call.audit.detail = f"after={request.SequenceNumber} returned={len(batch)} more={more}"
            return ConsultMutationsResponse(
                **reply_attributes(request),
                Header=FeedHeader(ApplicationId="mycarenet-sandbox",
                                  Date=dt.datetime.now(dt.UTC).replace(microsecond=0),
                                  SequenceNumber=last, Environment=environment),
                MutationList=MutationList(Mutation=[_mutation(m) for m in batch]),
                MoreAvailable=more,
            )

    return NationalRegister


def build(scenario: Scenario, deps: EndpointDeps) -> SoapEndpoint:
    return build_endpoint("national-register", [make_service(scenario, deps.environment)], NS,
                          "sandbox-nationalregister-v1.xsd", "sandbox-nationalregister-v1.wsdl", deps)
