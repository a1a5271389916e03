"""Memory of the sandbox under unauthenticated oversized-XML attacks (issue 21, finding 4).

Starts the sandbox in a child process, sends each attack ``--count`` times from ``--clients`` concurrent
connections to one business service, samples the child's resident memory every 20 ms, and prints per
attack: the peak RSS above the idle baseline, the RSS left after, and how the requests were answered.
Then checks that an honest request is still answered. Loopback only, bounded in count and time.

    .venv/bin/python benchmarks/attack_memory.py [--count 40] [--clients 8] [--service integrated-care]
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import SandboxProcess, run_load  # noqa: E402

ENV = b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>%s</s:Body></s:Envelope>'


def attacks(cap: int) -> dict[str, bytes]:
    flood = ENV % (b"<b/>" * ((cap - 200) // 4))  # ~250,000 elements in 1 MiB
    attrs = b"<a " + b" ".join(b"a%d=''" % i for i in range(90_000)) + b"/>"
    deep = b"<a>" * 100_000 + b"</a>" * 100_000
    xxe = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY % p SYSTEM "file:///etc/hostname"> %p;]>'
           + (ENV % b"<a/>").decode()).encode("utf-16")
    return {"250k elements (1 MiB)": flood[:cap], "90k attributes": (ENV % attrs)[:cap],
            "100k deep": (ENV % deep)[:cap], "UTF-16 DTD": xxe}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Sampler:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            self._stop.wait(0.02)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def machine() -> str:
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return f"machine: {os.cpu_count()} cores, {int(mem.split()[1]) // 1024} MiB; python {sys.version.split()[0]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=40, help="requests per attack (default 40)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--service", default="integrated-care")
    args = parser.parse_args()
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        box = SandboxProcess(Path(tmp) / "data")
        try:
            url = box.urls[args.service]
            pid = box.proc.pid
            time.sleep(1.0)  # let start-up allocations settle before the baseline (not a readiness wait)
            idle = rss_kib(pid)
            print(f"idle RSS: {idle / 1024:.0f} MiB", flush=True)
            for name, body in attacks(1_048_576).items():
                with Sampler(pid) as sampler:
                    result = run_load(url, [body] * args.count, args.clients, max_seconds=120,
                                      ok=lambda status, data: status == 500 and b"BusinessError" in data)
                after = rss_kib(pid)
                print(f"{name:<24} {result.count:>3} sent  {result.errors} not a BusinessError  "
                      f"peak +{(sampler.peak - idle) / 1024:7.1f} MiB  after +{(after - idle) / 1024:7.1f} MiB  "
                      f"p50 {result.percentile(50):7.1f} ms", flush=True)
            context = ssl.create_default_context(cafile=str(Path(tmp) / "data" / "pki" / "ca.cert.pem"))
            with urllib.request.urlopen(url + "?wsdl", timeout=30, context=context) as resp:  # still serving
                print(f"after the attacks: ?wsdl answers {resp.status}", flush=True)
        finally:
            box.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
