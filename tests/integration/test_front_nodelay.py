"""The HTTP front's accepted sockets have Nagle off (TCP_NODELAY): asyncio does not set it on accepted
sockets, and an answer written in pieces (TLS records) would wait for the client's delayed ACK."""

from __future__ import annotations

import http.client
import socket
from typing import Any

import pytest

from mycarenet_ic.server import ServedApp

pytestmark = pytest.mark.integration


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]


def test_accepted_sockets_send_without_delay() -> None:
    served = ServedApp("nodelay", _app).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"ok\n"
        front = served.server
        (server_side,) = list(front._conns)  # the kept-alive connection of this client
        sock = server_side.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        conn.close()
    finally:
        served.stop()
