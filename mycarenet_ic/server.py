"""Serving WSGI apps on 127.0.0.1, one port each, behind an asyncio HTTP/1.1 front; readiness polling.

Why a front of our own: a thread-per-connection server lets a handful of idle or slow sockets hold every
worker thread (slowloris). Here one event-loop thread per :class:`ServedApp` owns every socket of its
port: it reads each request whole (head and body) under deadlines and bounds, and only then hands the
complete request to a small pool of worker threads that run the WSGI app; the answer (status, headers,
body joined to bytes by the worker) is written back by the loop, under a deadline too. A worker never
waits on a socket, so sockets that send nothing, send slowly, or never read their answer cost a file
descriptor and a little memory, not a thread.

What the front enforces (:class:`FrontLimits`, defaults in brackets):

- the head (request line and headers) at most ``max_head_bytes`` [32 KiB] and ``max_headers`` [100], all
  of it within ``header_timeout`` [10 s] of its first byte; a connection that sends nothing, fresh or
  kept alive, is closed after ``idle_timeout`` [15 s];
- the body complete within ``body_timeout`` [30 s] of the end of the head, else 408 and close: the app
  never sees a partial body;
- framing as RFC 9112 wants it: Content-Length with Transfer-Encoding, differing Content-Length values
  or a non-numeric one are 400 and close; a transfer coding other than ``chunked`` is 501; chunked bodies
  are decoded (chunk-size lines at most ``max_chunk_line_bytes`` [1 KiB], at most ``max_chunks`` [16,384]
  chunks); ``Expect: 100-continue`` is answered before the body is read; control characters in header
  values, invalid header names, obs-fold, a missing or repeated Host in HTTP/1.1 → 400; header names with
  ``_`` are dropped (they would pass for CGI variables); HTTP/1.0 and 1.1 only (else 505);
- a body over ``max_body_bytes`` [1 MiB + 64 KiB]: ``max_body_bytes + 1`` bytes are read and the app is
  called with the declared ``CONTENT_LENGTH`` (the SOAP endpoint answers its signed REQUEST_TOO_LARGE
  fault), then the connection is closed; a declared length over ``refuse_body_over`` [16 MiB] is a plain
  413 without reading;
- at most ``max_connections`` [1024] connections, ``max_connections_per_client`` [32] per client address:
  past a bound, the connection of that client (resp. of anyone) that has waited longest and is not being
  worked on is closed to make room; if every one is being worked on, the new connection is refused;
- an answer must be taken by the client within ``write_timeout`` [30 s], else the connection is dropped.

:meth:`ServedApp.stop` stops accepting, drops the connections that are only waiting, lets the requests
being worked on finish and be answered (at most ``stop_grace`` [5 s]), then closes everything.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import http
import io
import logging
import re
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mycarenet_ic.config import Settings
from mycarenet_ic.mounts import Mounts, mount_of

log = logging.getLogger(__name__)

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class FrontLimits:
    """The bounds and deadlines of the HTTP front of one :class:`ServedApp` (seconds, bytes, counts)."""

    header_timeout: float = 10.0      # the whole head, from its first byte
    idle_timeout: float = 15.0        # a connection (fresh or kept alive) that sends nothing
    body_timeout: float = 30.0        # the whole body, from the end of the head
    write_timeout: float = 30.0       # one answer, until the client has taken it
    max_head_bytes: int = 32 * KIB    # request line + headers
    max_headers: int = 100
    max_chunk_line_bytes: int = 1024  # one chunk-size line, extensions included
    max_chunks: int = 16_384          # chunks in one body (64 bytes each on average for 1 MiB)
    # Bodies over this are cut here (the SOAP endpoint's own cap is 1 MiB and answers a signed fault).
    max_body_bytes: int = MIB + 64 * KIB
    refuse_body_over: int = 16 * MIB  # a declared Content-Length past this: 413 without reading
    max_connections: int = 1024
    max_connections_per_client: int = 32
    stop_grace: float = 5.0           # stop(): how long requests being worked on may still take
    close_linger: float = 1.0         # after a last answer: how long to wait for the client's close
    backlog: int = 256

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0 and name != "close_linger":
                raise ValueError(f"FrontLimits.{name} must be positive, not {value!r}")


# -- HTTP/1.1 syntax (RFC 9110 / 9112) ----------------------------------------------------------------------
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")          # control characters except HTAB
_TARGET = re.compile(rb"[\x21-\x7e]+")                     # visible ASCII, no spaces
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_HOST = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=:\[\]]*")
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                         "upgrade"})

# connection states
_IDLE, _HEAD, _BODY, _WORKING, _WRITING, _CLOSING = "idle", "head", "body", "working", "writing", "closing"


class _Reject(Exception):
    """The request cannot be served: answer ``status`` and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Late(Exception):
    """A deadline passed; ``answer`` says whether a 408 is still worth sending."""

    def __init__(self, what: str, answer: bool) -> None:
        super().__init__(what)
        self.answer = answer


class _Gone(Exception):
    """The client closed its side (or nothing came at all before the idle deadline)."""


class HttpEffect(Exception):
    """Raised by an app for an answer below SOAP (the sandbox's injected faults): ``status`` with ``body`` as
    plain text and the connection closed, or with ``status`` None no answer at all (a TCP reset)."""

    def __init__(self, message: str = "", *, status: str | None = None, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass
class _Request:
    method: str
    target: str
    path: str
    query: str
    version: str
    headers: list[tuple[str, str]]
    keep_alive: bool
    body: bytes = b""
    length: int | None = None      # CONTENT_LENGTH for the app (None: no body framing at all)
    oversize: bool = False         # the body was cut at the cap: close after answering
    host: str | None = None        # from an absolute-form target


@dataclass(frozen=True)
class _Answer:
    code: int
    status: str
    headers: list[tuple[str, str]]
    body: bytes


_NO_ANSWER = _Answer(0, "", [], b"")  # the connection is reset instead


def _plain(code: int, text: str | None = None) -> _Answer:
    phrase = http.HTTPStatus(code).phrase
    body = f"{text or phrase}\n".encode()
    return _Answer(code, f"{code} {phrase}", [("Content-Type", "text/plain; charset=utf-8")], body)


def _parse_head(raw: bytes, limits: FrontLimits) -> _Request:
    """The request line and headers of ``raw`` (the head without its final empty line), checked."""
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise _Reject(400, "malformed request line")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise _Reject(400, "malformed method")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        if _VERSION.fullmatch(version):
            raise _Reject(505, "only HTTP/1.0 and HTTP/1.1")
        raise _Reject(400, "malformed HTTP version")
    if not _TARGET.fullmatch(target):
        raise _Reject(400, "malformed request target")
    if len(lines) - 1 > limits.max_headers:
        raise _Reject(431, "too many header fields")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            raise _Reject(400, "obsolete line folding")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise _Reject(400, "malformed header field name")
        value = value.strip(b" \t")
        if _CTL.search(value):
            raise _Reject(400, "control character in a header field value")
        headers.append((name.decode("ascii"), value.decode("latin-1")))
    text_version = version.decode("ascii")
    connection = {t.strip().lower() for n, v in headers if n.lower() == "connection" for t in v.split(",")}
    keep_alive = "close" not in connection and (text_version == "HTTP/1.1" or "keep-alive" in connection)
    request = _Request(method.decode("ascii"), target.decode("ascii"), "", "", text_version, headers, keep_alive)
    _split_target(request)
    hosts = [v for n, v in headers if n.lower() == "host"]
    if text_version == "HTTP/1.1" and len(hosts) != 1:
        raise _Reject(400, "HTTP/1.1 needs exactly one Host header field")
    if any(not _HOST.fullmatch(h) for h in hosts):
        raise _Reject(400, "malformed Host")
    return request


def _split_target(request: _Request) -> None:
    target = request.target
    if target.startswith("/"):
        path, _, query = target.partition("?")
    elif target.lower().startswith(("http://", "https://")):  # absolute form: the authority replaces Host
        parts = urllib.parse.urlsplit(target)
        path, query, request.host = parts.path or "/", parts.query, parts.netloc
    elif target == "*" and request.method == "OPTIONS":
        path, query = "*", ""
    else:
        raise _Reject(400, "unsupported request target form")
    path = path.partition("#")[0]
    request.path = urllib.parse.unquote_to_bytes(path).decode("latin-1")  # PEP 3333: bytes as latin-1
    request.query = query.partition("#")[0]


def _framing(request: _Request, limits: FrontLimits) -> tuple[str, int]:
    """How the body is delimited: ("none", 0), ("length", n) or ("chunked", 0) (RFC 9112 §6)."""
    codings = [v for n, v in request.headers if n.lower() == "transfer-encoding"]
    lengths = [v for n, v in request.headers if n.lower() == "content-length"]
    if codings and lengths:
        raise _Reject(400, "Content-Length and Transfer-Encoding together")
    if codings:
        if request.version == "HTTP/1.0":
            raise _Reject(400, "Transfer-Encoding in an HTTP/1.0 request")
        listed = [c.strip().lower() for v in codings for c in v.split(",") if c.strip()]
        if listed == ["chunked"]:
            return "chunked", 0
        if any(c != "chunked" for c in listed):
            raise _Reject(501, "only the chunked transfer coding is supported")
        raise _Reject(400, "malformed Transfer-Encoding")
    if lengths:
        values = {p.strip() for v in lengths for p in v.split(",")}
        if len(values) != 1:
            raise _Reject(400, "conflicting Content-Length values")
        value = values.pop()
        if not _DIGITS.fullmatch(value):
            raise _Reject(400, "malformed Content-Length")
        declared = int(value) if len(value) <= 18 else limits.refuse_body_over + 1
        return "length", declared
    return "none", 0


# -- a pool of worker threads, started as needed ----------------------------------------------------------
class _Workers:
    """At most ``size`` daemon threads running submitted jobs; a thread is started only when every
    existing one is busy, so an idle port costs no threads."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self._cond = threading.Condition()
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False

    def submit(self, job: Callable[[], None]) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the worker pool is closed")
            self._jobs.append(job)
            if self._idle >= len(self._jobs):
                self._cond.notify()
            elif len(self._threads) < self.size:
                thread = threading.Thread(target=self._run, name=f"{self.name}-w{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                if self._closed:
                    return
                job = self._jobs.popleft()
            try:
                job()
            except Exception:  # noqa: BLE001 - a job handles its own errors; never lose the thread
                log.exception("%s: worker job failed", self.name)

    def close(self, timeout: float) -> None:
        with self._cond:
            self._closed = True
            self._jobs.clear()
            self._cond.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


# -- the front ---------------------------------------------------------------------------------------------
class _Buffer:
    """Bytes received and not yet consumed; consuming moves an offset, and the consumed front is dropped
    only once it outweighs what is left (so many small chunks cost linear time, not quadratic)."""

    __slots__ = ("data", "pos")

    def __init__(self) -> None:
        self.data = bytearray()
        self.pos = 0

    def __len__(self) -> int:
        return len(self.data) - self.pos

    def feed(self, chunk: bytes) -> None:
        self.data += chunk

    def find(self, sep: bytes, start: int = 0) -> int:
        at = self.data.find(sep, self.pos + start)
        return at - self.pos if at >= 0 else -1

    def startswith(self, prefix: bytes) -> bool:
        return self.data.startswith(prefix, self.pos)

    def take(self, n: int) -> bytes:
        out = bytes(self.data[self.pos:self.pos + n])
        self.skip(len(out))
        return out

    def skip(self, n: int) -> None:
        self.pos += n
        if self.pos * 2 >= len(self.data):
            del self.data[:self.pos]
            self.pos = 0


class _Conn:
    __slots__ = ("reader", "writer", "transport", "peer", "task", "state", "buf")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: tuple[str, int],
                 task: asyncio.Task[Any] | None) -> None:
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.peer = peer
        self.task = task
        self.state = _IDLE
        self.buf = _Buffer()


class HttpFront:
    """One listening socket, one event loop thread, a pool of workers running one WSGI app."""

    def __init__(self, name: str, app: Any, host: str, port: int, threads: int, limits: FrontLimits,
                 tls: ssl.SSLContext | None = None) -> None:
        self.name = name
        self.app = app
        self.limits = limits
        self.tls = tls
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, port), family=family, backlog=limits.backlog)
        self.bind_addr: tuple[str, int] = (host, int(self.sock.getsockname()[1]))
        self._workers = _Workers(f"http-{name}", max(1, threads))
        # Mounts (several apps by path) get a pool each: a service waiting on a stub of the same port
        # never holds the stub's threads.
        self._pools: dict[str, _Workers] = {}
        self._drain: frozenset[str] = frozenset()  # while stopping: the mounts still served
        self._thread = threading.Thread(target=self._run, name=f"http-{name}", daemon=True)
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._started = self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        # connections in the order they started waiting (oldest first), all and per client address
        self._conns: dict[_Conn, None] = {}
        self._clients: dict[str, dict[_Conn, None]] = {}
        self._busy = 0
        self._quiet: asyncio.Event | None = None
        self._stopping = False
        self._paused: asyncio.TimerHandle | None = None
        self._wrapping: set[asyncio.Task[None]] = set()  # accepted sockets being wrapped into transports
        self._date = (0, "")

    @property
    def port(self) -> int:
        return self.bind_addr[1]

    # -- life cycle (any thread) -----------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._started or self._stopped:
                raise RuntimeError(f"{self.name}: already started or stopped")
            self._started = True
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            started = self._started
        if not started:
            self.sock.close()
            return
        self._ready.wait(10)
        loop, event = self._loop, self._stop_requested
        if loop is not None and event is not None:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop already ended
                pass
        self._thread.join(self.limits.stop_grace + 10)
        for pool in [self._workers, *self._pools.values()]:
            pool.close(timeout=1.0)
        self.sock.close()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(loop))
        except Exception:  # noqa: BLE001 - logged; stop() still ends the thread
            log.exception("%s: the HTTP front failed", self.name)
        finally:
            self._ready.set()
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _main(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._stop_requested = asyncio.Event()
        self._quiet = asyncio.Event()
        self._quiet.set()
        self.sock.setblocking(False)
        loop.add_reader(self.sock.fileno(), self._on_acceptable)
        self._ready.set()
        await self._stop_requested.wait()
        # stop accepting; what only waits goes now; what a worker holds may finish and be answered
        self._stopping = True
        # Mounts that others on this port call (the stubs) are still served while requests drain.
        self._drain = self.app.draining if isinstance(self.app, Mounts) else frozenset()
        if not self._drain:
            self._stop_accepting(loop)
        for conn in list(self._conns):  # draining, an idle connection may be a service's own, to a stub
            if conn.state not in (_WORKING, _WRITING) and not self._drain:
                self._drop(conn)
        try:
            async with asyncio.timeout(self.limits.stop_grace):
                while self._busy:
                    await self._quiet.wait()
        except TimeoutError:
            log.warning("%s: %d request(s) still in flight after %.1f s; closing", self.name, self._busy,
                        self.limits.stop_grace)
        if self._drain:
            self._drain = frozenset()
            self._stop_accepting(loop)
        for conn in list(self._conns):
            self._drop(conn)
        # Every handler ends, those of connections accepted just before the close included: they start,
        # see that we are stopping and close their transport (a handler cancelled before it started
        # would leave its socket open).
        for _ in range(5):
            others = asyncio.all_tasks() - {asyncio.current_task()}
            if not others:
                break
            await asyncio.wait(others, timeout=1.0)
        for _ in range(2):  # the aborted transports' connection_lost callbacks close their sockets
            await asyncio.sleep(0)

    def _stop_accepting(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self.sock.fileno())
        if self._paused is not None:
            self._paused.cancel()
        self.sock.close()

    # -- connections (loop thread) ---------------------------------------------------------------------
    # Accepting is a reader callback of our own rather than asyncio's Server: accept() happens inside the
    # callback, so stopping can never strand a socket that was accepted but not yet wrapped.
    def _on_acceptable(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self.limits.backlog):
            try:
                client, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:  # out of descriptors or buffers: pause a little, the backlog waits
                log.warning("%s: accept failed (%s); pausing for 0.1 s", self.name, exc)
                loop.remove_reader(self.sock.fileno())
                self._paused = loop.call_later(0.1, self._resume_accepting)
                return
            client.setblocking(False)
            # asyncio sets TCP_NODELAY only on sockets whose proto says TCP, which accepted ones do not: without
            # it the last segment of an answer written in pieces (TLS records) waits for the client's delayed ACK.
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(self._wrap(client))
            self._wrapping.add(task)
            task.add_done_callback(self._wrapping.discard)

    def _resume_accepting(self) -> None:
        self._paused = None
        if not self._stopping:
            asyncio.get_running_loop().add_reader(self.sock.fileno(), self._on_acceptable)

    async def _wrap(self, client: socket.socket) -> None:
        def protocol() -> asyncio.StreamReaderProtocol:
            return asyncio.StreamReaderProtocol(asyncio.StreamReader(limit=64 * KIB), self._on_client)

        try:
            # With TLS the handshake happens here, bounded like a request head (a slow handshake holds
            # no worker either).
            await asyncio.get_running_loop().connect_accepted_socket(
                protocol, client, ssl=self.tls,
                ssl_handshake_timeout=self.limits.header_timeout if self.tls is not None else None)
        except BaseException as exc:
            client.close()
            if not isinstance(exc, Exception):
                raise
            log.warning("%s: could not set up a connection: %s", self.name, exc)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        task = asyncio.current_task()
        conn = _Conn(reader, writer, (str(peer[0]), int(peer[1])), task)
        if (self._stopping and not self._drain) or not self._admit(conn):
            conn.transport.abort()
            return
        try:
            if self.tls is None:  # (asyncio's TLS transport never resumes a writer paused at high=0)
                conn.transport.set_write_buffer_limits(high=0)  # drain() returns once the kernel has it all
            await self._serve(conn)
        except (_Gone, OSError):
            pass
        except asyncio.CancelledError:
            pass  # dropped (evicted, or stop() gave up on it): the transport is closed below
        except Exception:  # noqa: BLE001 - one connection's failure must not reach the loop
            log.exception("%s: connection from %s failed", self.name, conn.peer[0])
        finally:
            self._forget(conn)
            if not conn.transport.is_closing():
                conn.transport.abort()

    def _admit(self, conn: _Conn) -> bool:
        """Make room for ``conn`` within the bounds (closing the longest-waiting idle one), or refuse it."""
        mine = self._clients.get(conn.peer[0], {})
        if len(mine) >= self.limits.max_connections_per_client and not self._evict_from(mine):
            log.warning("%s: %s holds %d connections, all being worked on: refused one", self.name,
                        conn.peer[0], len(mine))
            return False
        if len(self._conns) >= self.limits.max_connections and not self._evict_from(self._conns):
            log.warning("%s: %d connections, all being worked on: refused one", self.name, len(self._conns))
            return False
        self._conns[conn] = None
        self._clients.setdefault(conn.peer[0], {})[conn] = None
        return True

    def _evict_from(self, conns: dict[_Conn, None]) -> bool:
        victim = next((c for c in conns if c.state != _WORKING), None)
        if victim is None:
            return False
        log.info("%s: connection bound reached: closed a %s connection of %s", self.name, victim.state,
                 victim.peer[0])
        self._drop(victim)
        return True

    def _drop(self, conn: _Conn) -> None:
        self._forget(conn)
        conn.transport.abort()
        if conn.task is not None and conn.task is not asyncio.current_task():
            conn.task.cancel()

    def _forget(self, conn: _Conn) -> None:
        self._conns.pop(conn, None)
        mine = self._clients.get(conn.peer[0])
        if mine is not None:
            mine.pop(conn, None)
            if not mine:
                del self._clients[conn.peer[0]]

    def _requeue(self, conn: _Conn) -> None:
        """``conn`` starts waiting again: it becomes the youngest waiting connection."""
        for conns in (self._conns, self._clients.get(conn.peer[0], {})):
            if conn in conns:
                del conns[conn]
                conns[conn] = None

    # -- one connection: requests one after the other ----------------------------------------------------
    async def _serve(self, conn: _Conn) -> None:
        while True:
            conn.state = _IDLE
            try:
                request = await self._read_request(conn)
            except _Reject as exc:
                log.debug("%s: %s from %s: %s", self.name, exc.status, conn.peer[0], exc.reason)
                await self._answer_and_close(conn, _plain(exc.status, exc.reason), method="GET")
                return
            except _Late as exc:
                log.debug("%s: %s from %s", self.name, exc, conn.peer[0])
                if exc.answer:
                    await self._answer_and_close(conn, _plain(408), method="GET")
                return
            if self._stopping and mount_of(request.path) not in self._drain:
                return
            conn.state = _WORKING
            self._busy += 1
            self._quiet.clear()  # type: ignore[union-attr]
            try:
                answer = await self._in_worker(self._environ(request, conn))
                if answer is _NO_ANSWER:  # an app's HttpEffect without a status: reset, as a cut connection
                    conn.transport.get_extra_info("socket").setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.transport.abort()
                    return
                conn.state = _WRITING
                close = (not request.keep_alive or request.oversize or self._stopping
                         or any(n.lower() == "connection" and "close" in v.lower() for n, v in answer.headers))
                await self._write(conn, self._head(answer, request, close)
                                  + (b"" if request.method == "HEAD" else answer.body))
            finally:
                self._busy -= 1
                if not self._busy:
                    self._quiet.set()  # type: ignore[union-attr]
            if close:
                await self._close(conn)
                return
            self._requeue(conn)

    async def _fill(self, conn: _Conn) -> None:
        data = await conn.reader.read(64 * KIB)
        if not data:
            raise _Gone
        conn.buf.feed(data)

    async def _read_request(self, conn: _Conn) -> _Request:
        limits = self.limits
        if not conn.buf:
            try:
                async with asyncio.timeout(limits.idle_timeout):
                    await self._fill(conn)
            except TimeoutError:
                raise _Late("idle", answer=False) from None
        conn.state = _HEAD
        try:
            async with asyncio.timeout(limits.header_timeout):
                raw = await self._read_head(conn)
        except TimeoutError:
            raise _Late("head too slow", answer=True) from None
        request = _parse_head(raw, limits)
        kind, declared = _framing(request, limits)
        if kind == "length" and declared > limits.refuse_body_over:
            raise _Reject(413, "request body too large")
        expect = [v.strip().lower() for n, v in request.headers if n.lower() == "expect"]
        if expect and request.version == "HTTP/1.1":
            if expect != ["100-continue"]:
                raise _Reject(417, "only 100-continue is supported")
            if kind == "chunked" or declared:
                await self._write(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.state = _BODY
        try:
            async with asyncio.timeout(limits.body_timeout):
                if kind == "length":
                    request.body = await self._read_exact(conn, min(declared, limits.max_body_bytes + 1))
                    request.length, request.oversize = declared, declared > limits.max_body_bytes
                elif kind == "chunked":
                    request.body, request.oversize = await self._read_chunked(conn)
                    request.length = len(request.body)
        except TimeoutError:
            raise _Late("body too slow", answer=True) from None
        except _Gone:
            raise _Late("body cut short", answer=False) from None
        return request

    async def _read_head(self, conn: _Conn) -> bytes:
        buf, limit, searched = conn.buf, self.limits.max_head_bytes, 0
        while True:
            while buf.startswith(b"\r\n"):  # RFC 9112 §2.2: empty lines before the request line are ignored
                buf.skip(2)
                searched = 0
            end = buf.find(b"\r\n\r\n", max(0, searched - 3))
            if end >= 0:
                if end + 4 > limit:
                    raise _Reject(431, "request head too large")
                raw = buf.take(end)
                buf.skip(4)
                return raw
            if len(buf) > limit:
                raise _Reject(431, "request head too large")
            searched = len(buf)
            await self._fill(conn)

    async def _read_exact(self, conn: _Conn, n: int) -> bytes:
        while len(conn.buf) < n:
            await self._fill(conn)
        return conn.buf.take(n)

    async def _read_line(self, conn: _Conn, limit: int, what: str) -> bytes:
        searched = 0
        while True:
            end = conn.buf.find(b"\r\n", max(0, searched - 1))
            if end >= 0:
                if end > limit:
                    raise _Reject(400, f"{what} too long")
                line = conn.buf.take(end)
                conn.buf.skip(2)
                return line
            if len(conn.buf) > limit + 1:
                raise _Reject(400, f"{what} too long")
            searched = len(conn.buf)
            await self._fill(conn)

    async def _read_chunked(self, conn: _Conn) -> tuple[bytes, bool]:
        """A chunked body, decoded; stops after ``max_body_bytes + 1`` bytes (then True: over the cap)."""
        cap = self.limits.max_body_bytes
        body = bytearray()
        for _ in range(self.limits.max_chunks + 1):
            line = await self._read_line(conn, self.limits.max_chunk_line_bytes, "chunk-size line")
            size_text = line.partition(b";")[0].strip(b" \t")
            if not _HEX.fullmatch(size_text) or _CTL.search(line):
                raise _Reject(400, "malformed chunk-size line")
            size = int(size_text, 16)
            if size == 0:
                break
            take = min(size, cap + 1 - len(body))
            body += await self._read_exact(conn, take)
            if len(body) > cap:
                return bytes(body), True
            if await self._read_exact(conn, 2) != b"\r\n":
                raise _Reject(400, "chunk not followed by CRLF")
        else:
            raise _Reject(400, "too many chunks")
        count = size = 0
        while True:  # the trailer section: read, bounded, and dropped
            line = await self._read_line(conn, self.limits.max_head_bytes, "trailer field")
            if not line:
                return bytes(body), False
            count, size = count + 1, size + len(line) + 2
            if count > self.limits.max_headers or size > self.limits.max_head_bytes:
                raise _Reject(431, "trailer section too large")

    async def _write(self, conn: _Conn, data: bytes) -> None:
        if conn.transport.is_closing():
            raise _Gone
        conn.writer.write(data)
        try:
            async with asyncio.timeout(self.limits.write_timeout):
                await conn.writer.drain()
        except TimeoutError:
            log.info("%s: %s did not take its answer within %.0f s", self.name, conn.peer[0],
                     self.limits.write_timeout)
            raise _Gone from None

    async def _answer_and_close(self, conn: _Conn, answer: _Answer, method: str) -> None:
        request = _Request(method, "", "", "", "HTTP/1.1", [], False)
        conn.state = _WRITING
        await self._write(conn, self._head(answer, request, close=True) + answer.body)
        await self._close(conn)

    async def _close(self, conn: _Conn) -> None:
        """Close after a last answer: end our side, give the client a moment to end its own (so what it
        still sends does not turn into a reset that could destroy the answer), then close."""
        conn.state = _CLOSING
        transport = conn.transport
        if transport.is_closing():
            return
        if not self._stopping and self.limits.close_linger > 0 and transport.can_write_eof():
            transport.write_eof()
            try:
                async with asyncio.timeout(self.limits.close_linger):
                    for _ in range(16):
                        if not await conn.reader.read(64 * KIB):
                            break
            except (TimeoutError, OSError):
                pass
        transport.close()

    # -- the WSGI side -----------------------------------------------------------------------------------
    def _environ(self, request: _Request, conn: _Conn) -> dict[str, Any]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": request.path,
            "QUERY_STRING": request.query,
            "SERVER_NAME": self.bind_addr[0],
            "SERVER_PORT": str(self.port),
            "SERVER_PROTOCOL": request.version,
            "SERVER_SOFTWARE": "mycarenet-ic",
            "REMOTE_ADDR": conn.peer[0],
            "REMOTE_PORT": str(conn.peer[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.tls is not None else "http",
            "wsgi.input": io.BytesIO(request.body),
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in request.headers:
            if "_" in name:  # would be indistinguishable from a CGI variable (HTTP_X_USER vs X-User)
                continue
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                continue  # the body is whole: CONTENT_LENGTH is set below
            if key != "CONTENT_TYPE":
                key = "HTTP_" + key
            if key in environ:
                environ[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
            else:
                environ[key] = value
        if request.host is not None:
            environ["HTTP_HOST"] = request.host
        if request.length is not None:
            environ["CONTENT_LENGTH"] = str(request.length)
        return environ

    async def _in_worker(self, environ: dict[str, Any]) -> _Answer:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Answer] = loop.create_future()

        def settle(answer: _Answer) -> None:
            if not future.done():
                future.set_result(answer)

        def job() -> None:
            answer = self._call_app(environ)
            try:
                loop.call_soon_threadsafe(settle, answer)
            except RuntimeError:  # the loop is gone: stop() gave up waiting for this request
                pass

        self._pool(environ).submit(job)
        return await future

    def _pool(self, environ: dict[str, Any]) -> _Workers:
        """The workers of the request's mount (started as needed, in the loop thread), else the port's."""
        name = mount_of(environ["PATH_INFO"])
        if not isinstance(self.app, Mounts) or name not in self.app:
            return self._workers
        pool = self._pools.get(name)
        if pool is None:
            pool = self._pools[name] = _Workers(f"http-{self.name}-{name}", self._workers.size)
        return pool

    def _call_app(self, environ: dict[str, Any]) -> _Answer:
        """Run the app (in a worker thread); any failure is a plain 500, logged, without details."""
        try:
            return self._run_app(environ)
        except HttpEffect as effect:
            if effect.status is None:
                return _NO_ANSWER
            return _Answer(int(effect.status[:3]), effect.status, [("Content-Type", "text/plain; charset=utf-8"),
                                                                   ("Connection", "close")], effect.body)
        except Exception:  # noqa: BLE001 - the client gets a bare 500, the log gets the traceback
            log.exception("%s: %s %s failed", self.name, environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            return _plain(500)

    def _run_app(self, environ: dict[str, Any]) -> _Answer:
        chosen: list[Any] = []          # [status, headers]
        chunks: list[bytes] = []

        def write(data: bytes) -> None:
            if not chosen:
                raise AssertionError("write() before start_response()")
            if not isinstance(data, bytes):
                raise TypeError("write() takes bytes")
            chunks.append(data)

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            if exc_info is not None:
                try:
                    if any(chunks):  # the answer has begun: too late to replace it
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif chosen:
                raise AssertionError("start_response() called twice without exc_info")
            if not isinstance(status, str) or not isinstance(headers, list):
                raise TypeError("start_response(status: str, headers: list)")
            chosen[:] = [status, headers]
            return write

        result: Iterable[bytes] = self.app(environ, start_response)
        try:
            for chunk in result:
                if not isinstance(chunk, bytes):
                    raise TypeError("a WSGI app yields bytes")
                if chunk and not chosen:
                    raise AssertionError("body before start_response()")
                chunks.append(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not chosen:
            raise AssertionError("the app returned without calling start_response()")
        status, headers = chosen
        match = re.fullmatch(r"([2-5][0-9][0-9]) [^\r\n]*", status)
        if match is None or not status.isascii():
            raise ValueError(f"bad WSGI status {status!r}")
        for name, value in headers:
            if (not isinstance(name, str) or not isinstance(value, str) or not _TOKEN.fullmatch(name.encode("latin-1"))
                    or _CTL.search(value.encode("latin-1"))):
                raise ValueError(f"bad WSGI header {name!r}")
        return _Answer(int(match.group(1)), status, list(headers), b"".join(chunks))

    def _head(self, answer: _Answer, request: _Request, close: bool) -> bytes:
        lines = [f"HTTP/1.1 {answer.status}"]
        length_sent = date_sent = False
        no_body = answer.code in (204, 304)
        for name, value in answer.headers:
            low = name.lower()
            if low in _HOP_BY_HOP:
                continue  # PEP 3333: the server's business
            if low == "content-length":
                if length_sent or no_body:
                    continue
                if request.method != "HEAD" and value.strip() != str(len(answer.body)):
                    log.warning("%s: the app's Content-Length %r is not its body's %d", self.name, value,
                                len(answer.body))
                    value = str(len(answer.body))
                length_sent = True
            date_sent = date_sent or low == "date"
            lines.append(f"{name}: {value}")
        if not length_sent and not no_body:
            lines.append(f"Content-Length: {len(answer.body)}")
        if not date_sent:
            lines.append(f"Date: {self._http_date()}")
        if close:
            lines.append("Connection: close")
        elif request.version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _http_date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, email.utils.formatdate(now, usegmt=True))
        return self._date[1]


class ServedApp:
    """A WSGI app on its own port behind the asyncio front; ``port=0`` picks a free port. The socket is
    bound (and listening) at construction, so :attr:`port` and :attr:`url` are known before :meth:`start`."""

    def __init__(self, name: str, app: Any, host: str = Settings.host, port: int = 0,
                 threads: int = Settings.server_threads, path: str = "/", limits: FrontLimits | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.name = name
        self.path = path
        self.limits = limits or FrontLimits()
        self.server = HttpFront(name, app, host, port, threads, self.limits, tls)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        host = self.server.bind_addr[0]
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.server.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}{self.path}"

    def start(self) -> ServedApp:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now (for servers that cannot bind port 0 themselves, such as gunicorn)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def server_tls(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """The TLS side of the front: TLS 1.2 or newer, the server certificate the sandbox CA issued."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


def client_tls(ca_file: Path | str) -> ssl.SSLContext:
    """A client context that trusts only ``ca_file`` (the sandbox CA) and checks the host name."""
    return ssl.create_default_context(cafile=str(ca_file))


def wait_ready(url: str, timeout: float = 30.0, ca_file: Path | str | None = None) -> None:
    """Poll ``url`` until it answers 200, backing off a little between tries (``ca_file``: the CA an
    https URL's certificate must chain to)."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    last: Exception | None = None
    context = client_tls(ca_file) if ca_file is not None else None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as resp:  # noqa: S310 - our own loopback URL
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = exc
        time.sleep(delay)  # polling back-off, not a fixed wait for readiness
        delay = min(delay * 2, 0.2)
    raise TimeoutError(f"{url} did not become ready: {last}")
