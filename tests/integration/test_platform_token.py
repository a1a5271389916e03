"""The platform calls the eHealth stubs as a platform component does in production: with its own STS
holder-of-key token, fetched once and reused, never with a bare certificate."""

from __future__ import annotations

import pytest

from mycarenet_ic import ns
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.sandbox import Sandbox
from tests import support
from tests.ic_client import IcClient

pytestmark = pytest.mark.integration


def _rows(box: Sandbox, service: str) -> list[dict[str, object]]:
    return [r for r in box.platform.audit.rows(limit=100_000) if r["service"] == service]


def test_the_platform_reaches_the_stubs_with_one_sts_token(sandbox: Sandbox) -> None:
    doctor = IcClient(sandbox, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    doctor.consult(support.PATIENT_LINKED)  # upstream calls: the platform has its token after this
    tokens, links = len(_rows(sandbox, "sts")), len(_rows(sandbox, "attribute-authority"))
    for _ in range(3):
        doctor.consult(support.PATIENT_LINKED)
    assert len(_rows(sandbox, "attribute-authority")) >= links + 3  # each consult asks for the link
    source = sandbox.gateways.tokens
    assert source is not None and len(_rows(sandbox, "sts")) == tokens and source.fetches == 1  # one, reused
    token = source.token()
    assert token.identity.quality is Quality.PLATFORM
    # what the gateways send carries that assertion, not a certificate
    sent = sandbox.gateways.attribute_authority._client.signer.sign(support.envelope(support.aa_body()))
    assertion = sent.find(f".//{{{ns.SAML11_ASSERTION}}}Assertion")
    assert assertion is not None and assertion.get("AssertionID") == token.assertion_id
    assert sent.find(f".//{{{ns.WSSE}}}BinarySecurityToken") is None
