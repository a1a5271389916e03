"""The Integrated Care access matrix again, every caller authenticated as in production: an identity
certificate without a quality and an STS holder-of-key token (its own sandbox, so the matrix's declarations
start from the same data)."""

from __future__ import annotations

import pytest

from mycarenet_ic.sandbox import Sandbox
from tests.ic_client import IcClient
from tests.integration.test_integrated_care import CELLS, check_cell, matrix_clients

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sts_clients(sandbox: Sandbox) -> dict[str, IcClient]:
    return matrix_clients(sandbox, sts=True)


def test_every_caller_signs_with_the_token_not_a_certificate(sts_clients: dict[str, IcClient]) -> None:
    from mycarenet_ic import ns
    from tests import support

    envelope = sts_clients["doctor"].signer.sign(support.envelope(support.aa_body()))
    security = envelope.find(f".//{{{ns.WSSE}}}Security")
    assert security is not None and security.find(f"{{{ns.WSSE}}}BinarySecurityToken") is None
    assert security.find(f"{{{ns.SAML11_ASSERTION}}}Assertion") is not None


@pytest.mark.parametrize("role,operation,where", CELLS, ids=[f"{r}-{o}-{w}" for r, o, w in CELLS])
def test_access_matrix_with_sts_tokens(sandbox: Sandbox, sts_clients: dict[str, IcClient], role: str,
                                       operation: str, where: str) -> None:
    check_cell(sandbox, sts_clients, role, operation, where)
