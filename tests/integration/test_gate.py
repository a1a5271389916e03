"""One process works on at most ``max_inflight`` business requests at once (``MYCARENET_MAX_INFLIGHT``);
the others wait their turn with their body read, and stub requests are never held back: a business
request holding the only place may itself be waiting on a stub served by the same process."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import pytest

from mycarenet_ic.config import Settings
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.gate import FairGate
from mycarenet_ic.sandbox import Sandbox
from tests import support
from tests.ic_client import Fault, IcClient
from tests.integration.test_caches import upstream_calls

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    tmp: Path = tmp_path_factory.mktemp("gate")
    # One place, and no cached upstream answers: every consultation calls CoBrHa and the AttributeAuthority.
    box = Sandbox(Settings(data_dir=tmp / "data", max_inflight=1, cobrha_cache_seconds=0, nr_cache_seconds=0,
                           mutation_sync_seconds=3600, upstream_timeout_seconds=30,
                           accepted_tokens="x509,saml-hok"), reset_scenario=True)
    box.start(0)
    support.trust(box.settings.data_dir)
    try:
        yield box
    finally:
        box.stop()


def test_with_one_place_a_request_still_reaches_the_stubs(gated: Sandbox) -> None:
    client = IcClient(gated, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    cobrha, links = upstream_calls(gated, "cobrha"), upstream_calls(gated, "attribute-authority")
    assert not isinstance(client.consult(support.PATIENT_LINKED), Fault)
    # The stubs answered while the consultation held the only place: they are not behind the gate.
    assert upstream_calls(gated, "cobrha") > cobrha
    assert upstream_calls(gated, "attribute-authority") == links + 1


def test_a_request_waits_for_a_free_place(gated: Sandbox) -> None:
    client = IcClient(gated, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    before = len(gated.platform.audit.rows(limit=1_000_000))
    gate = gated.platform.gate
    assert isinstance(gate, FairGate)  # max_inflight=1: one place
    gate.__enter__()  # the test takes the only place
    with ThreadPoolExecutor(1) as pool:
        try:
            pending = pool.submit(client.consult, support.PATIENT_LINKED)
            with pytest.raises(FutureTimeout):
                pending.result(timeout=1.0)
            # Held back before any work: nothing audited, no stub asked.
            assert len(gated.platform.audit.rows(limit=1_000_000)) == before
        finally:
            gate.__exit__(None, None, None)
        answer = pending.result(timeout=60)
    assert not isinstance(answer, Fault)
    rows = support.service_rows_since(gated, "integrated-care", before)
    assert [r["outcome"] for r in rows] == ["OK"]
