"""The layer's upstream connections: a kept-alive connection idle past ``MAX_IDLE_SECONDS`` is not sent on
again (the server may be closing it at that very moment: the request would be lost with a reset, an
``UpstreamUnavailable`` for a call with nothing wrong); below the bound it is reused."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from mycarenet_ic.clients import base
from mycarenet_ic.server import FrontLimits, ServedApp

pytestmark = pytest.mark.integration


def _peer_port(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["REMOTE_PORT"].encode()]


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(base._FreshConnections, "clock", staticmethod(fake))
    return fake


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    adapter = base.FreshConnectionAdapter(pool_connections=1, pool_maxsize=4, max_retries=0)
    session.mount("http://", adapter)
    return session


def test_a_connection_idle_past_the_bound_is_replaced_and_a_recent_one_reused(clock: _Clock) -> None:
    served = ServedApp("idle", _peer_port, limits=FrontLimits(idle_timeout=60)).start()
    session = _session()
    try:
        first = session.get(served.url, timeout=10).text
        clock.now += base.MAX_IDLE_SECONDS - 0.5
        assert session.get(served.url, timeout=10).text == first  # kept alive, taken again
        clock.now += base.MAX_IDLE_SECONDS + 0.5
        third = session.get(served.url, timeout=10).text
        assert third != first  # a new connection: another client port
        assert session.get(served.url, timeout=10).text == third
    finally:
        session.close()
        served.stop()


def test_the_bound_is_below_the_idle_timeout_of_the_sandbox_front() -> None:
    assert base.MAX_IDLE_SECONDS < FrontLimits().idle_timeout
    assert base.MAX_IDLE_SECONDS < 5.0  # Apache httpd's KeepAliveTimeout default


def test_every_signed_client_sends_through_the_bounded_pools() -> None:
    from mycarenet_ic import ns

    client = base.SignedSoapClient("sandbox-nationalregister-v1.wsdl",
                                   f"{{{ns.SANDBOX_NATIONAL_REGISTER}}}NationalRegisterSoapBinding",
                                   "https://127.0.0.1:9/nr", signer=None, verifier=None)  # type: ignore[arg-type]
    for url in ("http://127.0.0.1:9/x", "https://127.0.0.1:9/x"):
        adapter = client._session.get_adapter(url)
        assert isinstance(adapter, base.FreshConnectionAdapter)
        pool = adapter.get_connection_with_tls_context(requests.Request("POST", url).prepare(), verify=False)
        assert isinstance(pool, base._FreshConnections)
