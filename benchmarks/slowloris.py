"""Slowloris and idle sockets against one served port: the latency of honest requests (each on a new
connection) without and with ``--idle`` silent sockets plus ``--slow`` sockets that send a request head one
byte every 0.2 s, and the process's thread count. The port runs a trivial WSGI app behind the asyncio front
of ``mycarenet_ic.server`` with ``--threads`` workers, twice: with the default connection bounds (the
per-client bound closes the longest-waiting attack sockets; every socket here comes from 127.0.0.1), and
with the bounds lifted so that every attack socket stays open. Bounded: at most 1000 attack sockets, a
5 s client timeout per request, ``--seconds`` per phase. Loopback only.

    .venv/bin/python benchmarks/slowloris.py [--idle 200 --slow 50 --requests 50 --threads 4]
"""

from __future__ import annotations

import argparse
import http.client
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import median  # noqa: E402
from mycarenet_ic.server import FrontLimits, ServedApp  # noqa: E402

HOST = "127.0.0.1"
CLIENT_TIMEOUT = 5.0


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d\n" % len(body)]


def thread_count() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def is_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False


class Attack:
    """``idle`` silent sockets and ``slow`` slowloris sockets (one byte each per 0.2 s, from one thread)."""

    HEAD = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nX-Slow: "

    def __init__(self, port: int, idle: int, slow: int, seconds: float) -> None:
        self.idle = [socket.create_connection((HOST, port), timeout=5) for _ in range(idle)]
        self.slow = [socket.create_connection((HOST, port), timeout=5) for _ in range(slow)]
        self.sent = 0
        self.under_way = threading.Event()  # every slow socket has sent its first bytes
        self._stop = threading.Event()
        self._deadline = time.monotonic() + seconds
        self._thread = threading.Thread(target=self._run, name="slowloris", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        dead: set[int] = set()
        while time.monotonic() < self._deadline:
            byte = self.HEAD[self.sent:self.sent + 1] or b"a"
            for k, sock in enumerate(self.slow):
                if k not in dead:
                    try:
                        sock.send(byte)
                    except OSError:
                        dead.add(k)
            self.sent += 1
            if self.sent == 5:
                self.under_way.set()
            if self._stop.wait(0.2):  # the attack's pace
                return

    def still_open(self) -> int:
        return sum(is_open(s) for s in self.idle + self.slow)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.idle + self.slow:
            sock.close()


def honest(port: int, count: int, deadline: float) -> tuple[list[float], int]:
    """``count`` POSTs, one after the other, each on a new connection: (latencies in s, failures)."""
    latencies, failures = [], 0
    for n in range(count):
        if time.monotonic() > deadline:
            failures += count - n
            break
        started = time.perf_counter()
        conn = http.client.HTTPConnection(HOST, port, timeout=CLIENT_TIMEOUT)
        try:
            conn.request("POST", "/", body=b"x" * 2000, headers={"Content-Type": "text/xml"})
            answer = conn.getresponse()
            ok = answer.status == 200 and answer.read() == b"2000\n"
        except OSError:
            ok = False
        finally:
            conn.close()
        latencies.append(time.perf_counter() - started)
        failures += 0 if ok else 1
    return latencies, failures


def line(label: str, latencies: list[float], failures: int) -> str:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))] if ordered else 0.0
    return (f"{label:<52} requests={len(latencies):>4}  failed={failures:>3}  "
            f"median={median(ordered) * 1000 if ordered else 0.0:7.2f} ms  p95={p95 * 1000:7.2f} ms  "
            f"max={(ordered[-1] if ordered else 0.0) * 1000:7.2f} ms")


def phase(label: str, limits: FrontLimits, args: argparse.Namespace) -> None:
    served = ServedApp("bench", app, HOST, 0, args.threads, limits=limits).start()
    try:
        honest(served.port, 5, time.monotonic() + 10)  # warm-up
        quiet = honest(served.port, args.requests, time.monotonic() + args.seconds)
        print(line(f"{label}: no attack", *quiet))
        threads_quiet = thread_count()
        attack = Attack(served.port, args.idle, args.slow, seconds=args.seconds)
        try:
            attack.under_way.wait(5)
            loud = honest(served.port, args.requests, time.monotonic() + args.seconds)
            print(line(f"{label}: {args.idle} idle + {args.slow} slowloris", *loud))
            print(f"{'':<52} attack sockets still open: {attack.still_open()} of {args.idle + args.slow};  "
                  f"threads in this process: {threads_quiet} without the attack, {thread_count()} with it "
                  f"(its sender thread included; the port may start {args.threads} workers)")
        finally:
            attack.close()
    finally:
        served.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--slow", type=int, default=50)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--threads", type=int, default=4, help="worker threads of the served port")
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="cap per phase (under the default 10 s header timeout, so the attack holds)")
    args = parser.parse_args()
    if not (0 <= args.idle + args.slow <= 1000 and 1 <= args.requests <= 10_000 and 0 < args.seconds <= 60):
        parser.error("bounded: at most 1000 attack sockets, 10,000 requests, 60 s per phase")
    print(f"python {sys.version.split()[0]}; one port on {HOST}, {args.threads} worker threads; "
          f"honest requests on new connections, client timeout {CLIENT_TIMEOUT:.0f} s")
    phase("default bounds (32 per client)", FrontLimits(), args)
    phase("bounds lifted", FrontLimits(max_connections=4096, max_connections_per_client=4096), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
