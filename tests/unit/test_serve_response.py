"""``serve``'s gunicorn response writer: an answer of known length goes out in one send with its head, the
same bytes gunicorn's own writer sends in two; everything else is gunicorn's path unchanged. Real gunicorn
request parsing and responses over a real socket pair."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser
from gunicorn.http.wsgi import Response

from mycarenet_ic.serve import one_send_response

pytestmark = pytest.mark.unit


class _Counted:
    """A real socket whose ``sendall`` calls are counted."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.sends = sock, 0

    def sendall(self, data: bytes) -> None:
        self.sends += 1
        self.sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def _answer(kind: type, method: str, headers: list[tuple[str, str]], pieces: list[bytes]) -> tuple[bytes, int]:
    """(the bytes on the wire, sendall calls) of one response written by ``kind`` to a parsed request."""
    server, client = socket.socketpair()
    try:
        client.sendall(f"{method} /memberdata HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".encode())
        cfg = Config()
        request = next(iter(RequestParser(cfg, server, ("127.0.0.1", 1))))
        counted = _Counted(server)
        response = kind(request, counted, cfg)
        response.start_response("200 OK", headers)
        for piece in pieces:
            response.write(piece)
        response.close()
        server.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := client.recv(65536):
            data += chunk
        return re.sub(rb"Date: [^\r]*", b"Date: -", data), counted.sends
    finally:
        server.close()
        client.close()


def test_an_answer_of_known_length_is_one_send_of_the_same_bytes() -> None:
    body = b"<soap:Envelope>" + b"x" * 9000 + b"</soap:Envelope>"
    headers = [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(body)))]
    ours, ours_sends = _answer(one_send_response(), "POST", headers, [body])
    theirs, their_sends = _answer(Response, "POST", headers, [body])
    assert ours == theirs and ours.endswith(body) and b"Content-Length: %d" % len(body) in ours
    assert (ours_sends, their_sends) == (1, 2)


@pytest.mark.parametrize(("method", "headers", "pieces"), [
    ("POST", [("Content-Type", "text/plain")], [b"streamed ", b"in pieces"]),  # no length: chunked
    ("POST", [("Content-Length", "6")], [b"abc", b"def"]),  # a known length, in two pieces
    ("HEAD", [("Content-Length", "5")], [b"hello"]),  # no body on the wire
    ("POST", [("Content-Length", "0")], []),  # nothing written: the head at close
])
def test_anything_else_is_gunicorns_own_path_byte_for_byte(method: str, headers: list[tuple[str, str]],
                                                           pieces: list[bytes]) -> None:
    assert _answer(one_send_response(), method, headers, pieces) == _answer(Response, method, headers, pieces)
