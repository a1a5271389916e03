"""Shared by the benchmark scripts: a sandbox in a subprocess, signed requests built ahead of the clock,
a bounded load generator, percentiles. Loopback only."""

from __future__ import annotations

import datetime as dt
import http.client
import os
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mycarenet_ic.clients.messages import attribute_query, commons_request, tariff_request
from mycarenet_ic.server import wait_ready

GP_NIHII, GP_SSIN = "11200035003", "74030902123"
PATIENT = "48031202166"
MD_NS = "urn:be:fgov:ehealth:mycarenet:memberdata:protocol:v1"
TAR_NS = "urn:be:fgov:ehealth:mycarenet:tarification:protocol:v1"
IC_NS = "urn:be:fgov:ehealth:mycarenet:integratedcare:protocol:v1"
MD_FACETS = [("urn:be:cin:nippin:insurability", [("requestType", "invoicing"), ("contactType", "other")]),
             ("urn:be:cin:nippin:chronicCondition", []), ("urn:be:cin:nippin:carePath", [])]


def memberdata_body() -> str:
    """A MemberData consultation for Peeters by the demo GP: 7 assertions in the answer."""
    end = dt.date.today() - dt.timedelta(days=1)
    query = attribute_query(GP_NIHII, PATIENT, end - dt.timedelta(days=30), end, MD_FACETS)
    return commons_request("MemberDataConsultationRequest", MD_NS, 3, query, PATIENT, end, "bench",
                           GP_NIHII, GP_SSIN)


def tariff_body() -> str:
    day = dt.date.today() - dt.timedelta(days=1)
    blob = tariff_request(GP_NIHII, GP_SSIN, "82112502158", day, ["101076", "103132"])
    return commons_request("TarificationConsultationRequest", TAR_NS, 2, blob, "82112502158", day, "bench",
                           GP_NIHII, GP_SSIN)


def declaration_body(ssin: str, project: str, request_id: str) -> str:
    return (f'<ic:DeclareInclusionRequest xmlns:ic="{IC_NS}" Id="{request_id}" '
            f'IssueInstant="{dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()}"><ic:CommonInput>'
            "<ic:IsTest>true</ic:IsTest><ic:Origin><ic:Package><ic:Name>bench</ic:Name></ic:Package></ic:Origin>"
            f"</ic:CommonInput><ic:Patient><ic:Ssin>{ssin}</ic:Ssin></ic:Patient><ic:Project>{project}</ic:Project>"
            "<ic:Status>information</ic:Status><ic:StartDate>2026-11-01</ic:StartDate>"
            "<ic:Consent><ic:Agreement>agree</ic:Agreement><ic:Date>2026-11-01</ic:Date></ic:Consent>"
            "</ic:DeclareInclusionRequest>")


class SandboxProcess:
    """``mycarenet-ic sandbox`` in a child process (its own cores' worth of GIL), on free ports; or, with
    ``deployment="serve"``, ``mycarenet-ic serve --sandbox`` (gunicorn workers on ``DATABASE_URL``)."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, deployment: str = "sandbox",
                 workers: int = 2) -> None:
        # The benchmarks' clients sign with certificates that say their quality (the simple mode).
        keep = deployment == "serve"  # serve on DATABASE_URL (unset: the data directory's SQLite); sandbox: SQLite
        full = ({k: v for k, v in os.environ.items() if keep or k != "DATABASE_URL"}
                | {"MYCARENET_TOKENS": "x509,saml-hok"} | (env or {}))
        full["MYCARENET_DATA_DIR"] = str(data_dir)
        if deployment == "serve":
            command, last = ["serve", "--sandbox", "--workers", str(workers)], "READY readyz"
        else:
            command, last = ["sandbox"], "Ctrl-C"
        self.proc = subprocess.Popen([sys.executable, "-m", "mycarenet_ic.cli", *command, "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=full)
        self.urls: dict[str, str] = {}
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("READY "):
                _, name, url = line.split()
                self.urls[name] = url
            if line.startswith(last):
                # HTTPS with the sandbox's own CA: trusted by run_load and by requests in this process
                trust_ca(Path(data_dir) / "pki" / "ca.cert.pem")
                if deployment == "serve":  # the port is bound before the workers are: wait for them
                    wait_ready(self.urls["readyz"], 60, Path(data_dir) / "pki" / "ca.cert.pem")
                return
        raise RuntimeError(f"mycarenet-ic {command[0]} did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


_CA_FILE: list[Path] = []


def trust_ca(ca_file: Path) -> None:
    """Trust ``ca_file`` (a sandbox CA) for the https URLs of this benchmark process."""
    _CA_FILE[:] = [ca_file]
    os.environ["REQUESTS_CA_BUNDLE"] = str(ca_file)


def connection(parts: urllib.parse.SplitResult, timeout: float) -> http.client.HTTPConnection:
    """A keep-alive connection to ``parts``' host: TLS checked against the trusted sandbox CA for https."""
    assert parts.hostname is not None
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=str(_CA_FILE[0]) if _CA_FILE else None)
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


@dataclass
class LoadResult:
    clients: int
    count: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def throughput(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000 if ordered else 0.0

    def line(self, label: str) -> str:
        return (f"{label:<28} clients={self.clients:>2}  requests={self.count:>5}  errors={self.errors:>3}  "
                f"{self.throughput:7.1f} req/s  p50={self.percentile(50):7.1f} ms  p95={self.percentile(95):7.1f} ms  "
                f"p99={self.percentile(99):7.1f} ms")


def run_load(url: str, messages: Sequence[bytes], clients: int, max_seconds: float,
             ok: Callable[[int, bytes], bool] = lambda status, _body: status == 200) -> LoadResult:
    """Send every message once, from ``clients`` threads, stopping at ``max_seconds`` (bounded).

    Each client is a bare keep-alive HTTP/1.1 connection (http.client): the generator should cost the
    2-core machine as little CPU as possible, since it shares it with the service.
    """
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    next_index = iter(range(len(messages)))
    deadline = time.monotonic() + max_seconds
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("benchmarks only talk to loopback")

    def client() -> None:
        nonlocal errors
        conn = connection(parts, 120)
        try:
            while time.monotonic() < deadline:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                started = time.perf_counter()
                conn.request("POST", parts.path, body=messages[i],
                             headers={"Content-Type": "text/xml; charset=utf-8"})
                response = conn.getresponse()
                body = response.read()
                took = time.perf_counter() - started
                with lock:
                    latencies.append(took)
                    errors += 0 if ok(response.status, body) else 1
        finally:
            conn.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
    seconds = time.perf_counter() - started
    return LoadResult(clients, len(latencies), errors, seconds, latencies)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _proc_ticks(pid: int) -> tuple[int, int]:
    """(parent pid, user + system clock ticks) of one process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _tree_ticks(root: int) -> int:
    """CPU ticks used so far by ``root`` and all its descendants that are still alive."""
    table: dict[int, tuple[int, int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                table[int(name)] = _proc_ticks(int(name))
            except (OSError, ValueError, IndexError):
                continue
    members, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in table.items():
            if ppid == parent and pid not in members:
                members.add(pid)
                frontier.append(pid)
    return sum(table[pid][1] for pid in members if pid in table)


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class CpuMeter:
    """Where the cores went during a run: the server's process tree, this process (the load generator),
    and the whole machine (the rest: PostgreSQL, anything else). Figures in cores (1.0 = one core busy)."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def __enter__(self) -> CpuMeter:
        self._t0 = time.perf_counter()
        self._server0 = _tree_ticks(self.server_pid)
        self._self0 = sum(os.times()[:2])
        self._busy0, self._total0 = _machine_ticks()
        return self

    def __exit__(self, *exc: object) -> None:
        hz = os.sysconf("SC_CLK_TCK")
        wall = time.perf_counter() - self._t0
        busy, total = _machine_ticks()
        self.seconds = wall
        self.server = (_tree_ticks(self.server_pid) - self._server0) / hz / wall
        self.generator = (sum(os.times()[:2]) - self._self0) / wall
        cores = os.cpu_count() or 1
        self.machine = (busy - self._busy0) / max(1, total - self._total0) * cores
        self.other = max(0.0, self.machine - self.server - self.generator)

    def line(self) -> str:
        return (f"cores busy: server {self.server:.2f}, load generator {self.generator:.2f}, "
                f"other (database, rest) {self.other:.2f}; machine {self.machine:.2f} of {os.cpu_count()}")
