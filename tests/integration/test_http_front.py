"""The asyncio HTTP/1.1 front of :mod:`mycarenet_ic.server` over real sockets on 127.0.0.1: idle and
slowloris sockets hold no worker thread, every deadline closes what it should, RFC 9112 framing, the
connection bounds evict the longest-waiting idle connection, stop() never hangs; and the same against the
running sandbox (stubs and Integrated Care starved, bodies over the cap, framing attacks that change
nothing). Small limits keep the tests quick; sizes and durations are bounded (see each test)."""

from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import func, select

from mycarenet_ic.clients.gateways import CachingCobrha
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.persistence.tables import audit_log, replay_cache
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.wssec import Signer, Verifier
from mycarenet_ic.server import FrontLimits, ServedApp
from tests import support
from tests.ic_client import Fault, IcClient

pytestmark = pytest.mark.integration
# The HTTP layer itself is under test here (requests written byte for byte): the sandbox of this module
# serves plain HTTP; TLS is tested in test_tls.py.
SANDBOX_TLS = False

QUICK = FrontLimits(header_timeout=1, idle_timeout=1, body_timeout=1, write_timeout=1, close_linger=0.2)


# -- a trivial app and raw HTTP over sockets -------------------------------------------------------------
class EchoApp:
    """Answers what it was given as JSON; counts its calls; ``/hold`` waits for :attr:`release`,
    ``/boom`` raises, ``/big`` answers :attr:`big` bytes."""

    SHOWN = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT",
             "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT", "CONTENT_TYPE", "CONTENT_LENGTH", "wsgi.url_scheme",
             "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once")

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.big = 16 * 1024 * 1024

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self.lock:
            self.calls += 1
        path = environ["PATH_INFO"]
        if path == "/hold":
            self.entered.release()
            self.release.wait(30)
        if path == "/boom":
            raise RuntimeError("secret detail of the failure")
        if path == "/big":
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return [b"x" * self.big]
        body = environ["wsgi.input"].read()
        shown: dict[str, Any] = {k: environ[k] for k in self.SHOWN if k in environ}
        shown.update({k: v for k, v in environ.items() if k.startswith("HTTP_")})
        shown["body"] = body.decode("latin-1")
        shown["body_length"] = len(body)
        shown["wsgi.version"] = list(environ["wsgi.version"])
        start_response("200 OK", [("Content-Type", "application/json")])  # no Content-Length: the front adds it
        return [json.dumps(shown).encode()]


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[ServedApp, EchoApp]]]:
    """Start an :class:`EchoApp` behind a :class:`ServedApp` with the given limits; stopped after the test."""
    started: list[tuple[ServedApp, EchoApp]] = []

    def make(limits: FrontLimits = QUICK, threads: int = 4) -> tuple[ServedApp, EchoApp]:
        app = EchoApp()
        served = ServedApp(f"front{len(started)}", app, threads=threads, limits=limits).start()
        started.append((served, app))
        return served, app

    yield make
    for served, app in started:
        app.release.set()
        served.stop()


class Raw:
    """One client socket speaking raw HTTP/1.1, with a read buffer."""

    def __init__(self, port: int, timeout: float = 5.0, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _more(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return False
        self.buf += data
        return bool(data)

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            if not self._more():
                raise AssertionError(f"closed before {marker!r}; got {self.buf[:200]!r}")
        out, _, self.buf = self.buf.partition(marker)
        return out + marker

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """One whole answer: (status, headers with lower-case names, body)."""
        head = self.until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split(" ")[1])
        headers = {}
        for line in head[1:-2]:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            if not self._more():
                raise AssertionError("closed inside the body")
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def closed_by_server(self, within: float) -> bytes:
        """Wait (at most ``within`` s) for the server to close; what it still sent before closing."""
        self.sock.settimeout(within)
        try:
            while self._more():
                pass
        except TimeoutError:
            raise AssertionError(f"the server did not close within {within} s") from None
        rest, self.buf = self.buf, b""
        return rest

    def is_open(self) -> bool:
        return is_open(self.sock)


def is_open(sock: socket.socket) -> bool:
    """Whether the server still holds this connection (nothing to read but not closed), without waiting."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        while True:
            if not sock.recv(65536):
                return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(timeout)


def request(port: int, method: str = "GET", path: str = "/", body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    """One honest request on a new connection (http.client), timed out after ``timeout`` s."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        data = answer.read()
        return answer.status, (json.loads(data) if answer.getheader("Content-Type") == "application/json" else {})
    finally:
        conn.close()


class Slowloris:
    """``count`` sockets that each send a request head one byte every ~0.2 s (never finishing it), from
    one helper thread, for at most ``seconds``; plus nothing else. Bounded in count and time."""

    HEAD = b"POST /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nX-Slow: "

    def __init__(self, port: int, count: int, seconds: float = 10.0) -> None:
        assert count <= 200 and seconds <= 30
        self.socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
        self.sent = 0
        self.failed: set[int] = set()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + seconds
        self._thread = threading.Thread(target=self._run, name="slowloris", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while time.monotonic() < self._deadline:
            byte = self.HEAD[self.sent:self.sent + 1] or b"a"
            for k, sock in enumerate(self.socks):
                if k not in self.failed:
                    try:
                        sock.send(byte)
                    except OSError:
                        self.failed.add(k)
            self.sent += 1
            if self._stop.wait(0.2):  # the attack's own pace, not a wait for the server
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.socks:
            sock.close()


def idle_sockets(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]


def wait_all_closed(socks: list[socket.socket], within: float) -> list[socket.socket]:
    """Wait until the server has closed every socket (readable, then EOF or reset); those still open."""
    deadline = time.monotonic() + within
    open_ = [s for s in socks if is_open(s)]
    with selectors.DefaultSelector() as sel:
        for s in open_:
            sel.register(s, selectors.EVENT_READ)
        while open_ and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if not is_open(sock):
                    sel.unregister(sock)
                    open_.remove(sock)
    return open_


def front_threads(served: ServedApp) -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith(f"http-{served.name}"))


# -- 1. idle and slowloris sockets tie no worker ---------------------------------------------------------
@pytest.mark.parametrize("bounds", ["roomy", "default"])
def test_honest_requests_pass_100_idle_and_16_slowloris_sockets_on_4_workers(serve: Any, bounds: str) -> None:
    # roomy: the bounds let every attack socket stay open, so only the asynchronous front can help;
    # default: the per-client bound (32) also closes the oldest waiting ones.
    limits = FrontLimits(max_connections_per_client=1000) if bounds == "roomy" else FrontLimits()
    served, app = serve(limits, threads=4)
    idle = idle_sockets(served.port, 100)
    slow = Slowloris(served.port, 16, seconds=8)
    try:
        while slow.sent < 5:  # the attack is under way: every slow socket has sent its first bytes
            assert request(served.port)[0] == 200
        app.calls = 0
        for n in range(5):
            started = time.monotonic()
            status, echo = request(served.port, "POST", f"/honest/{n}", body=b"x" * 1000,
                                   headers={"Content-Type": "text/xml"}, timeout=5)
            assert time.monotonic() - started < 5
            assert (status, echo["PATH_INFO"], echo["body_length"]) == (200, f"/honest/{n}", 1000)
        assert app.calls == 5  # never for the slow heads
        assert front_threads(served) <= 1 + 4  # one loop thread, at most 4 workers, whatever the sockets
        still_open = sum(is_open(s) for s in idle + slow.socks)
        if bounds == "roomy":
            assert still_open == 116 and not slow.failed
        else:
            assert still_open <= 32
    finally:
        slow.close()
        for s in idle:
            s.close()


# -- 2. the real sandbox: a starved stub port and a starved service port ---------------------------------
def _state(box: Sandbox) -> tuple[list[Any], int, int]:
    """(audit rows, replay-cache entries, scenario links): what rejected traffic must leave as it was."""
    with box.platform.engine.connect() as conn:
        rows = list(conn.execute(select(audit_log.c.seq, audit_log.c.outcome).order_by(audit_log.c.seq)).all())
        replays = conn.execute(select(func.count()).select_from(replay_cache)).scalar_one()
    return rows, int(replays), len(box.scenario.links)


def _port(box: Sandbox, name: str) -> int:
    return box.port  # one port for every service (each at its own path)


def test_a_consultation_succeeds_while_cobrha_and_integrated_care_are_starved(sandbox: Sandbox) -> None:
    doctor = IcClient(sandbox, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    cobrha = sandbox.gateways.cobrha
    if isinstance(cobrha, CachingCobrha):
        cobrha._answers.clear()  # the consultation must really reach the starved CoBrHa stub
    before = len(sandbox.platform.audit.rows(limit=1_000_000))
    attacks, idle = [], []
    try:
        for name in ("cobrha", "integrated-care"):
            idle += idle_sockets(_port(sandbox, name), 40)
            attacks.append(Slowloris(_port(sandbox, name), 20, seconds=12))
        while min(a.sent for a in attacks) < 5:
            assert request(_port(sandbox, "integrated-care"), path="/integrated-care?wsdl")[0] == 200
        started = time.monotonic()
        answer = doctor.consult(support.PATIENT_LINKED)
        assert time.monotonic() - started < 10
        assert not isinstance(answer, Fault), answer  # not UPSTREAM_UNAVAILABLE
        assert support.service_rows_since(sandbox, "cobrha", before)  # CoBrHa was asked, through the attack
        # afterwards the server closes every attack socket: bound, header timeout (10 s), idle timeout (15 s)
        left = wait_all_closed(idle + [s for a in attacks for s in a.socks], within=30)
        assert left == []
    finally:
        for a in attacks:
            a.close()
        for s in idle:
            s.close()


# -- 3. deadlines --------------------------------------------------------------------------------------
def test_a_slow_head_is_closed_header_timeout_after_its_first_byte(serve: Any) -> None:
    served, app = serve(FrontLimits(header_timeout=1, idle_timeout=1.5, close_linger=0.2))
    with Raw(served.port) as c:
        c.sock.settimeout(0.8)  # silent for a while first, within the idle timeout
        with pytest.raises(TimeoutError):
            c.sock.recv(1)
        first = time.monotonic()
        closed_at = None
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40:  # one byte per 0.2 s, at most 12 s
            try:
                c.send(bytes([byte]))
                c.sock.settimeout(0.2)
                data = c.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            closed_at = time.monotonic()
            assert data == b"" or data.startswith(b"HTTP/1.1 408 ")
            c.closed_by_server(2)
            break
        assert closed_at is not None, "the slow head was never cut"
        assert 0.9 <= closed_at - first < 2.5  # header_timeout from the first byte, not from the connect
    assert app.calls == 0


def test_a_silent_connection_is_closed_after_idle_timeout(serve: Any) -> None:
    served, app = serve()
    with Raw(served.port) as c:
        started = time.monotonic()
        assert c.closed_by_server(5) == b""  # nothing was sent: no 408 either
        assert 0.9 <= time.monotonic() - started < 3
    with Raw(served.port) as c:  # kept alive after one answer, then silent
        c.send(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.response()[0] == 200
        answered = time.monotonic()
        assert c.closed_by_server(5) == b""
        assert 0.9 <= time.monotonic() - answered < 3
    assert app.calls == 1


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_body_that_stops_midway_is_closed_after_body_timeout_and_never_reaches_the_app(serve: Any,
                                                                                      framing: str) -> None:
    served, app = serve()
    with Raw(served.port) as c:
        if framing == "length":
            c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        else:
            c.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" + b"x" * 10)
        started = time.monotonic()
        rest = c.closed_by_server(5)
        assert rest == b"" or rest.startswith(b"HTTP/1.1 408 ")
        assert 0.9 <= time.monotonic() - started < 3
    with Raw(served.port) as c:  # the client gives up mid-body: closed, app not called
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        c.sock.shutdown(socket.SHUT_WR)
        assert c.closed_by_server(5) == b""
    assert app.calls == 0


def test_an_answer_the_client_does_not_read_is_dropped_after_write_timeout_without_holding_a_worker(
        serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mycarenet_ic.server")
    served, app = serve(QUICK, threads=1)
    with Raw(served.port, rcvbuf=4096) as c:
        c.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # 16 MiB answer, never read for now
        deadline = time.monotonic() + 10
        while not any("did not take its answer" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the stalled answer was never dropped"
            assert request(served.port)[0] == 200  # the single worker is free all along
        got = c.closed_by_server(10)
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 16777216" in head
        assert len(body) < app.big  # cut: the server gave up on it


# -- 4. framing (RFC 9112) -----------------------------------------------------------------------------
REFUSED = {
    "Content-Length and Transfer-Encoding": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    "two different Content-Length": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", {400}),
    "Content-Length list 10, 20": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10, 20\r\n\r\n" + b"x" * 20, {400}),
    "non-digit Content-Length": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", {400}),
    "Transfer-Encoding gzip": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nxx", {400, 501}),
    "Transfer-Encoding gzip, chunked": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", {400, 501}),
    "Transfer-Encoding in HTTP/1.0": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    "control character in a value": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", {400}),
    "bare CR in a value": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", {400}),
    "space in a header name": (b"GET / HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n", {400}),
    "space before the colon": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", {400}),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n", {400}),
    "no Host in HTTP/1.1": (b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n", {400}),
    "HTTP/2.0": (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", {505}),
    "garbage request line": (b"GET /  HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    "bad chunk size": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", {400}),
    "chunk-size line too long": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 5000 + b"\r\n", {400}),
    "101 headers": (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(100)) + b"\r\n",
                    {431}),
    "head over 32 KiB": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 33_000 + b"\r\n\r\n", {431}),
    "declared body over 16 MiB": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17000000\r\n\r\n", {413}),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_badly_framed_requests_are_refused_and_closed_without_calling_the_app(serve: Any, name: str) -> None:
    served, app = serve()
    data, statuses = REFUSED[name]
    with Raw(served.port) as c:
        c.send(data)
        status, headers, body = c.response()
        assert status in statuses
        assert headers["connection"] == "close" and b"Traceback" not in body
        c.closed_by_server(3)
    assert app.calls == 0


def test_identical_repeated_content_lengths_are_accepted(serve: Any) -> None:
    served, _ = serve()
    with Raw(served.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\nhello")
        status, _, body = c.response()
    assert status == 200 and json.loads(body)["body"] == "hello"


def test_a_chunked_body_reaches_the_app_decoded_with_its_length(serve: Any) -> None:
    served, _ = serve()
    with Raw(served.port) as c:
        c.send(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nContent-Type: text/xml\r\n\r\n"
               b"5\r\nhello\r\n6;name=value\r\n world\r\n0\r\nX-Trailer: dropped\r\n\r\n")
        status, _, body = c.response()
        echo = json.loads(body)
        assert status == 200
        assert (echo["body"], echo["CONTENT_LENGTH"], echo["CONTENT_TYPE"]) == ("hello world", "11", "text/xml")
        assert "HTTP_TRANSFER_ENCODING" not in echo and "HTTP_X_TRAILER" not in echo
        c.send(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")  # still in step on the same connection
        assert json.loads(c.response()[2])["PATH_INFO"] == "/after"


def test_a_body_of_too_many_chunks_is_refused(serve: Any) -> None:
    served, app = serve(dataclasses.replace(QUICK, max_chunks=10))
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with Raw(served.port) as c:
        c.send(head + b"1\r\nx\r\n" * 10 + b"0\r\n\r\n")
        status, _, body = c.response()
        assert (status, json.loads(body)["body"]) == (200, "x" * 10)
        c.send(head + b"1\r\nx\r\n" * 11 + b"0\r\n\r\n")
        assert c.response()[0] == 400
        c.closed_by_server(3)
    assert app.calls == 1


def test_expect_100_continue_is_answered_before_the_body_is_read(serve: Any) -> None:
    served, app = serve()
    with Raw(served.port) as c:
        c.send(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert c.until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        assert app.calls == 0
        c.send(b"hello")
        status, _, body = c.response()
    assert status == 200 and json.loads(body)["body"] == "hello"


def test_keep_alive_and_pipelining(serve: Any) -> None:
    served, app = serve()
    with Raw(served.port) as c:
        for n in range(2):  # two requests one after the other on one connection
            c.send(b"GET /k%d HTTP/1.1\r\nHost: x\r\n\r\n" % n)
            status, headers, body = c.response()
            assert (status, json.loads(body)["PATH_INFO"]) == (200, f"/k{n}")
            assert headers.get("connection") != "close"
        # pipelined: both answered, in order, on the same connection
        c.send(b"POST /p1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /p2 HTTP/1.1\r\nHost: x\r\n\r\n")
        first, second = c.response(), c.response()
        assert json.loads(first[2])["body"] == "abc" and json.loads(second[2])["PATH_INFO"] == "/p2"
        c.send(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")  # Connection: close honoured
        status, headers, _ = c.response()
        assert status == 200 and headers["connection"] == "close"
        assert c.closed_by_server(3) == b""
    assert app.calls == 5
    with Raw(served.port) as c:  # HTTP/1.0 closes unless keep-alive is asked
        c.send(b"GET /old HTTP/1.0\r\n\r\n")
        assert c.response()[1]["connection"] == "close"
        c.closed_by_server(3)
    with Raw(served.port) as c:
        c.send(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert c.response()[1]["connection"] == "keep-alive"
        c.send(b"GET /old2 HTTP/1.0\r\n\r\n")
        assert json.loads(c.response()[2])["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_the_wsgi_environ(serve: Any) -> None:
    served, _ = serve()
    with Raw(served.port) as c:
        c.send(b"PUT /a%20b/%C3%A9?x=%41&y HTTP/1.1\r\nHost: h:1\r\nContent-Type: text/plain\r\n"
               b"X-Remote-User: honest\r\nX_Remote_User: spoofed\r\nAccept: a\r\nAccept: b\r\n"
               b"Content-Length: 4\r\n\r\nbody")
        status, headers, body = c.response()
    echo = json.loads(body)
    client_port = echo.pop("REMOTE_PORT")
    assert status == 200 and headers["content-length"] == str(len(body)) and "date" in headers
    assert echo == {
        "REQUEST_METHOD": "PUT", "SCRIPT_NAME": "", "PATH_INFO": "/a b/\u00c3\u00a9", "QUERY_STRING": "x=%41&y",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": str(served.port), "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "4",
        "wsgi.url_scheme": "http", "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "HTTP_HOST": "h:1", "HTTP_X_REMOTE_USER": "honest", "HTTP_ACCEPT": "a, b",
        "body": "body", "body_length": 4, "wsgi.version": [1, 0]}
    assert client_port.isdigit()


def test_an_app_failure_is_a_plain_500_without_details(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    served, _ = serve()
    with Raw(served.port) as c:
        c.send(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = c.response()
        assert status == 500 and b"secret" not in body and b"Traceback" not in body
        c.send(b"GET /fine HTTP/1.1\r\nHost: x\r\n\r\n")  # the connection is still usable
        assert c.response()[0] == 200
    assert any(r.exc_info and "secret detail" in str(r.exc_info[1]) for r in caplog.records)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_body_over_the_cap_reaches_the_app_cut_with_its_declared_length_then_closes(serve: Any,
                                                                                   framing: str) -> None:
    served, app = serve(FrontLimits(max_body_bytes=1000, refuse_body_over=100_000, close_linger=0.2))
    with Raw(served.port) as c:
        if framing == "length":
            c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"y" * 5000)
        else:
            c.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + b"400\r\n" + b"y" * 1024 + b"\r\n" + b"400\r\n" + b"y" * 1024 + b"\r\n0\r\n\r\n")
        status, headers, body = c.response()
        echo = json.loads(body)
        assert status == 200 and headers["connection"] == "close"
        assert echo["body_length"] == 1001
        assert echo["CONTENT_LENGTH"] == ("5000" if framing == "length" else "1001")
        c.closed_by_server(3)
    with Raw(served.port) as c:  # far over: a plain 413, nothing read, the app not called
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100001\r\n\r\n")
        assert c.response()[0] == 413
        c.closed_by_server(3)
    assert app.calls == 1


# -- 5. connection bounds ------------------------------------------------------------------------------
@pytest.mark.parametrize("bound", ["per client", "total"])
def test_past_a_bound_the_longest_waiting_idle_connection_makes_room(serve: Any, bound: str) -> None:
    limits = (FrontLimits(max_connections_per_client=8, idle_timeout=30) if bound == "per client"
              else FrontLimits(max_connections=8, idle_timeout=30))
    served, app = serve(limits)
    held: list[Raw] = []

    def kept_alive(path: bytes) -> Raw:
        c = Raw(served.port)
        held.append(c)
        c.send(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = c.response()
        assert (status, json.loads(body)["PATH_INFO"]) == (200, path.decode())
        return c

    try:
        idle = [kept_alive(b"/idle%d" % n) for n in range(8)]  # the bound's number, oldest first
        kept_alive(b"/honest")  # one more: answered ...
        assert idle[0].closed_by_server(3) == b""  # ... and the oldest waiting one was closed
        assert all(c.is_open() for c in idle[1:])
        idle[1].send(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")  # it becomes the youngest ...
        assert idle[1].response()[0] == 200
        kept_alive(b"/honest2")
        assert idle[2].closed_by_server(3) == b""  # ... so the next oldest goes instead
        assert idle[1].is_open() and all(c.is_open() for c in held[3:])
        assert app.calls == 8 + 1 + 1 + 1
    finally:
        for c in held:
            c.__exit__()


def test_when_every_connection_is_being_worked_on_a_new_one_is_refused(serve: Any) -> None:
    served, app = serve(FrontLimits(max_connections_per_client=4), threads=4)
    held = [Raw(served.port, timeout=10) for _ in range(4)]
    try:
        for c in held:
            c.send(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in held:
            assert app.entered.acquire(timeout=5)  # all four are in the app
        with Raw(served.port) as extra:
            extra.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert extra.closed_by_server(3) == b""  # refused: nobody could be evicted
        app.release.set()
        assert all(c.response()[0] == 200 for c in held)  # the held requests are answered all the same
    finally:
        for c in held:
            c.__exit__()
    assert app.calls == 4


# -- stop() --------------------------------------------------------------------------------------------
def test_stop_finishes_in_flight_requests_and_does_not_wait_for_idle_or_slow_sockets(serve: Any) -> None:
    served, app = serve(FrontLimits(header_timeout=30, idle_timeout=30, body_timeout=30))
    idle = idle_sockets(served.port, 10)
    slow = Slowloris(served.port, 5, seconds=10)
    try:  # the sockets closed whatever happens (left to the collector, they fail a later test's warnings)
        with Raw(served.port, timeout=10) as inflight, Raw(served.port) as half:
            half.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            inflight.send(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
            assert app.entered.acquire(timeout=5)
            stopper = threading.Thread(target=served.stop)
            started = time.monotonic()
            stopper.start()
            while True:  # readiness polling: stop() has begun once the port refuses connections
                try:
                    socket.create_connection(("127.0.0.1", served.port), timeout=1).close()
                except (ConnectionRefusedError, ConnectionResetError):  # reset: in the backlog as it closed
                    break
                assert time.monotonic() - started < 5
            app.release.set()
            status, headers, _ = inflight.response()
            assert status == 200 and headers["connection"] == "close"  # finished and answered
            stopper.join(10)
            assert not stopper.is_alive() and time.monotonic() - started < 5
            assert half.closed_by_server(1) == b""
            assert wait_all_closed(idle + slow.socks, within=1) == []
    finally:
        app.release.set()
        slow.close()
        for s in idle:
            s.close()
    assert app.calls == 1 and front_threads(served) == 0


# -- 6. the real sandbox: framing and size attacks change nothing ----------------------------------------
def test_framing_attacks_on_the_real_services_are_refused_and_change_nothing(sandbox: Sandbox,
                                                                            doctor_signer: Signer) -> None:
    message = support.to_bytes(support.signed(doctor_signer, support.aa_body()))
    port = _port(sandbox, "attribute-authority")
    head = b"POST /attribute-authority HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
    before = _state(sandbox)
    for extra, status in ((b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(message), 400),
                          (b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(message), len(message) - 1), 400),
                          (b"Transfer-Encoding: gzip\r\n", 501)):
        with Raw(port) as c:
            c.send(head + extra + b"\r\n" + message)
            assert c.response()[0] == status
            c.closed_by_server(3)
    with Raw(port) as c:  # the body stops half-way and the client gives up: no answer, the app never ran
        c.send(head + b"Content-Length: %d\r\n\r\n" % len(message) + message[: len(message) // 2])
        c.sock.shutdown(socket.SHUT_WR)
        assert c.closed_by_server(5) == b""
    assert _state(sandbox) == before
    with Raw(port) as c:  # the same message, chunked, as Java and .NET clients send it: served
        c.send(head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(message) + message + b"\r\n0\r\n\r\n")
        assert c.response()[0] == 200


def test_a_body_over_the_front_cap_still_gets_the_signed_request_too_large_fault(
        sandbox: Sandbox, answer_verifier: Verifier) -> None:
    port = _port(sandbox, "attribute-authority")
    body = (b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><a>'
            + b"x" * (2 * 1024 * 1024) + b"</a></soap:Body></soap:Envelope>")
    before = _state(sandbox)
    with Raw(port, timeout=10) as c:
        c.send(b"POST /attribute-authority HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body))
        sender = threading.Thread(target=lambda: _send_quietly(c.sock, body), daemon=True)
        sender.start()
        status, headers, answer = c.response()
        sender.join(10)
    assert status == 500 and headers["connection"] == "close"
    root = etree.fromstring(answer)
    assert support.Answer(status, answer, root).error_detail()["Code"] == "REQUEST_TOO_LARGE"
    answer_verifier.verify(root)  # the fault is signed by the service
    after = _state(sandbox)
    assert [r.outcome for r in after[0][len(before[0]):]] == ["DENIED"]
    assert after[1:] == before[1:]
    with Raw(port) as c:  # declared far larger: a plain 413, nothing read, nothing written
        c.send(b"POST /attribute-authority HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
               b"Content-Length: 50000000\r\n\r\n")
        assert c.response()[0] == 413
    assert _state(sandbox) == after


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:  # the server stopped reading at its cap and closed: expected
        pass
