"""A signed zeep client of the Integrated Care service, for the tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import zeep.exceptions
from lxml import etree

from mycarenet_ic.clients.base import SignedSoapClient
from mycarenet_ic.clients.sts import StsClient, TokenSource
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.wssec import Signer
from mycarenet_ic.soap.faults import descriptive_code

IC_NS = "urn:be:fgov:ehealth:mycarenet:integratedcare:protocol:v1"
BINDING = f"{{{IC_NS}}}IntegratedCareSoapBinding"
# The consent a declaration carries unless a test says otherwise (the date of the test run: never future).
AGREED_TODAY: tuple[str | None, dt.date | None] = ("agree", dt.date.today())


@dataclass
class Fault:
    code: str
    message: str
    kind: str
    retry: str


class IcClient:
    """A signed zeep client of the Integrated Care service for one certificate holder."""

    def __init__(self, box: Sandbox, quality: Quality, ssin: str | None, nihii: str | None,
                 url: str | None = None, sts: bool = False) -> None:
        """``sts``: as production, an identity certificate without a quality and an STS holder-of-key token
        for the quality (a PSI staff member or a patient asks as a person; the roles come from the
        AttributeAuthority); else the sandbox's simple mode, a certificate that says the quality."""
        self.box = box
        if sts:
            self.holder = box.platform.pki.issue_identity(quality, ssin, nihii if quality.is_organisation else None)
            pki = box.platform.pki
            tokens = TokenSource(StsClient(box.urls["sts"], self.holder, box.platform.trust,
                                           pki.service("sts").certificate, ca_file=pki.ca_file),
                                 Quality.CITIZEN if quality is Quality.PSI_STAFF else quality)
            signer = Signer(self.holder, token=lambda: tokens.token().assertion)
        else:
            self.holder = box.platform.pki.issue_holder(quality, ssin, nihii)
            signer = Signer(self.holder)
        self.signer = signer
        self.client = SignedSoapClient("mycarenet-integratedcare-v1.wsdl", BINDING, url or box.urls["integrated-care"],
                                       signer, box.platform.answer_verifier(), timeout=60)

    @staticmethod
    def common(**provider: Any) -> dict[str, Any]:
        origin: dict[str, Any] = {"Package": {"Name": "sandbox-tests", "License": {"Username": "u", "Password": "p"}}}
        if provider:
            origin["CareProvider"] = provider
        return {"IsTest": True, "Origin": origin, "InputReference": "ref-1"}

    def raw(self, operation: str, request_id: str | None = None, **kwargs: Any) -> Any:
        header = self.client.header()
        if request_id:
            header["Id"] = request_id
        kwargs.setdefault("CommonInput", self.common())
        try:
            return getattr(self.client._service, operation)(**header, **kwargs)
        except zeep.exceptions.Fault as exc:
            err = exc.detail[0]
            return Fault(descriptive_code(err.findtext("Code") or "", err.findtext("Message") or ""),
                         err.findtext("Message") or "", etree.QName(err).localname,
                         err.findtext("Retry") or "")

    def declare(self, ssin: str, project: str, status: str = "information", start: dt.date | None = None,
                consent: tuple[str | None, dt.date | None] | None = AGREED_TODAY,
                request_id: str | None = None) -> Any:
        """A declaration; by default with the patient's agreement registered today (seed 000 §11.1 needs
        a consent). ``consent=None`` sends none; a None inside the pair leaves that part out."""
        extra: dict[str, Any] = {}
        if consent is not None:
            extra["Consent"] = {k: v for k, v in (("Agreement", consent[0]), ("Date", consent[1])) if v is not None}
        return self.raw("declareInclusion", request_id, Patient={"Ssin": ssin}, Project=project, Status=status,
                        StartDate=start or dt.date.today(), **extra)

    def consult(self, ssin: str) -> Any:
        return self.raw("consultInclusions", Patient={"Ssin": ssin})

    def modify(self, ssin: str, inclusion_id: str, request_id: str | None = None, **changes: Any) -> Any:
        return self.raw("modifyInclusion", request_id, Patient={"Ssin": ssin}, InclusionId=inclusion_id, **changes)

    def list(self, project: str, offset: int = 0, max_results: int = 20) -> Any:
        return self.raw("listProjectPatients", Project=project, Offset=offset, MaxResults=max_results)
