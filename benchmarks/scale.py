"""Scale: 1 vs 2 gunicorn workers on PostgreSQL; consultation latency with 10^3 vs 10^6 stored inclusions;
``export insurers`` over 10^6 inclusions, its time and peak memory. Bounded; loopback only.

    DATABASE_URL=postgresql://… .venv/bin/python benchmarks/scale.py [--big 1000000] [--part workers,inclusions,export]

Without DATABASE_URL the inclusion and export parts run on SQLite and the workers part is skipped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import limit_harness  # noqa: E402
from benchmarks._common import (  # noqa: E402
    GP_NIHII,
    GP_SSIN,
    CpuMeter,
    SandboxProcess,
    median,
    memberdata_body,
    run_load,
)
from benchmarks.service_load import signed  # noqa: E402
from mycarenet_ic.app import Platform  # noqa: E402
from mycarenet_ic.config import Settings  # noqa: E402
from mycarenet_ic.domain.qualities import Quality  # noqa: E402
from mycarenet_ic.persistence.tables import ic_event, ic_inclusion, ic_request  # noqa: E402
from mycarenet_ic.security.wssec import Signer  # noqa: E402
from mycarenet_ic.server import free_port, wait_ready  # noqa: E402
from mycarenet_ic.stubs.scenario import Scenario  # noqa: E402

IC_NS = "urn:be:fgov:ehealth:mycarenet:integratedcare:protocol:v1"


def _rsa_signatures(seconds: float) -> int:
    """RSA-2048 signatures made in ``seconds`` by one process: pure CPU, no GIL hand-offs, no I/O."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        key.sign(b"x" * 64, padding.PKCS1v15(), hashes.SHA256())
        done += 1
    return done


def machine_ceiling(seconds: float = 4.0) -> float:
    """What 2 processes of pure CPU work get on this machine compared with 1 (2.0 on 2 free, real cores)."""
    with ProcessPoolExecutor(2) as pool:
        one = pool.submit(_rsa_signatures, seconds).result()
        two = sum(f.result() for f in [pool.submit(_rsa_signatures, seconds) for _ in range(2)])
    return two / one


def _one_run(database_url: str, count: int, n: int) -> tuple[float, float]:
    """One gunicorn with ``n`` workers on a fresh data directory: (requests/s, server cores busy)."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        platform = Platform.prepared(Settings(data_dir=data_dir, database_url=database_url))
        Scenario.for_data_dir(data_dir, reset=True)
        signer = Signer(platform.pki.issue_holder(Quality.DOCTOR, GP_SSIN, GP_NIHII), ttl_seconds=300)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items()} | {
            "MYCARENET_DATA_DIR": str(data_dir), "DATABASE_URL": database_url, "MYCARENET_PUBLIC_URL": base,
            "MYCARENET_TOKENS": "x509,saml-hok"}  # its client signs in the simple mode
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", str(n), "-k", "gthread", "--threads", "24",
                                 "-b", f"127.0.0.1:{port}", "mycarenet_ic.wsgi:create_app()"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(f"{base}/memberdata?wsdl", timeout=60)
            messages = [signed(signer, memberdata_body()) for _ in range(count + 16)]
            run_load(f"{base}/memberdata", messages[:16], 4, 30)  # warm-up: every worker's caches
            with CpuMeter(proc.pid) as cpu:
                got = run_load(f"{base}/memberdata", messages[16:], 16, 120)
            print(got.line(f"memberdata, {n} worker(s)"), flush=True)
            print(f"  {cpu.line()}; {got.count / (cpu.server * cpu.seconds):.1f} requests per server CPU-second",
                  flush=True)
            return got.throughput, cpu.server
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            platform.close()


def workers(database_url: str, count: int, rounds: int) -> None:
    """1 vs 2 gunicorn workers, in ``rounds`` rounds of alternating order (1,2 then 2,1 …), so that
    drift of a shared machine hits both alike; the figures are the medians."""
    ceiling = machine_ceiling()
    print(f"machine ceiling: 2 processes of pure CPU work (RSA signing) do {ceiling:.2f}x what 1 does", flush=True)
    harness = [limit_harness.measure(300)["per_second"]]  # this machine's one-core floor, before and after
    results: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    for r in range(rounds):
        for n in ((1, 2) if r % 2 == 0 else (2, 1)):
            results[n].append(_one_run(database_url, count, n))
    one, two = (median([t for t, _ in results[n]]) for n in (1, 2))
    cores_one, cores_two = (median([c for _, c in results[n]]) for n in (1, 2))
    print(f"medians of {rounds} rounds: 1 worker {one:.1f} req/s on {cores_one:.2f} cores, 2 workers {two:.1f} req/s "
          f"on {cores_two:.2f} cores")
    print(f"2 workers / 1 worker: {two / one:.2f}x (target >= 1.8; per round: "
          + ", ".join(f"{b[0] / a[0]:.2f}" for a, b in zip(results[1], results[2], strict=True)) + ")")
    harness.append(limit_harness.measure(300)["per_second"])
    print(f"limit harness (same run, before / after): {harness[0]:.1f} / {harness[1]:.1f} requests/s on one core; "
          f"2 workers / the faster harness: {two / max(harness):.2f} (plain HTTP here)")


def _fill(platform: Platform, total: int) -> None:
    """Bring the store to ``total`` inclusions (each with its change event), in batches, no service calls."""
    with platform.engine.connect() as conn:
        have = conn.execute(select(func.count()).select_from(ic_inclusion)).scalar_one()
    now = dt.datetime.now(dt.UTC)
    sealed = platform.sealer.seal("48031202166")
    batch = 20_000
    for start in range(have, total, batch):
        rows, events = [], []
        for i in range(start, min(total, start + batch)):
            inclusion_id = uuid.uuid4().hex
            rows.append({"id": inclusion_id, "patient": platform.pseudonymiser.pseudonym(f"{i:011d}"),
                         "patient_sealed": sealed, "project": ("91000153", "91000252", "91000351")[i % 3],
                         "status": "information", "declared_start": dt.date(2025, 1, 1),
                         "start_date": dt.date(2025, 2, 1), "declared_end": None, "end_date": None,
                         "closed_by_death": False, "consent": None, "consent_date": None, "provider_nihii": None,
                         "operator": "-", "version": 1, "created_at": now, "updated_at": now})
            events.append({"at": now, "kind": "declaration", "inclusion_id": inclusion_id, "patient_sealed": sealed,
                           "snapshot": json.dumps({"id": inclusion_id, "project": rows[-1]["project"],
                                                   "status": "information", "declared_start": "2025-01-01",
                                                   "start": "2025-02-01", "version": 1})})
        with platform.engine.begin() as conn:
            conn.execute(ic_inclusion.insert(), rows)
            conn.execute(ic_event.insert(), events)


def _consult_latency(data_dir: Path, database_url: str | None, count: int) -> float:
    env = {"DATABASE_URL": database_url} if database_url else {}
    box = SandboxProcess(data_dir, env)
    try:
        platform = Platform(Settings(data_dir=data_dir, database_url=database_url))
        signer = Signer(platform.pki.issue_holder(Quality.DOCTOR, GP_SSIN, GP_NIHII), ttl_seconds=300)
        body = ("<ic:ConsultInclusionsRequest xmlns:ic=\"" + IC_NS + "\" Id=\"_{id}\" IssueInstant=\"{at}\">"
                "<ic:CommonInput><ic:IsTest>true</ic:IsTest><ic:Origin><ic:Package><ic:Name>b</ic:Name>"
                "</ic:Package></ic:Origin></ic:CommonInput><ic:Patient><ic:Ssin>48031202166</ic:Ssin>"
                "</ic:Patient></ic:ConsultInclusionsRequest>")
        at = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        messages = [signed(signer, body.format(id=uuid.uuid4().hex, at=at)) for _ in range(count + 10)]
        run_load(box.urls["integrated-care"], messages[:10], 1, 30)
        got = run_load(box.urls["integrated-care"], messages[10:], 1, 120)
        platform.close()
        return got.percentile(50)
    finally:
        box.stop()


def inclusions(database_url: str | None, big: int, count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        platform = Platform.prepared(Settings(data_dir=data_dir, database_url=database_url))
        Scenario.for_data_dir(data_dir, reset=True)
        try:
            _fill(platform, 1_000)
            small = _consult_latency(data_dir, database_url, count)
            started = time.perf_counter()
            _fill(platform, big)
            print(f"filled {big} inclusions in {time.perf_counter() - started:.0f} s", flush=True)
            large = _consult_latency(data_dir, database_url, count)
            print(f"consultation p50: {small:.1f} ms with 10^3 inclusions, {large:.1f} ms with {big}: "
                  f"{large / small:.2f}x (target <= 1.2)", flush=True)
            with platform.engine.begin() as conn:  # what the export reads: every event, not yet exported
                conn.execute(ic_request.delete())
            _export(data_dir, database_url)
        finally:
            platform.close()


def _export(data_dir: Path, database_url: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"MYCARENET_DATA_DIR": str(data_dir)}
    if database_url:
        env["DATABASE_URL"] = database_url
    out = data_dir.parent / "export"
    # The export in a process of its own, which reports its own peak resident memory.
    script = ("import resource, sys\nfrom mycarenet_ic.cli import main\n"
              f"rc = main(['export', 'insurers', '--out', {str(out)!r}])\n"
              "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
              "sys.exit(rc)\n")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    peak_kb = [int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK_KB")]
    peak_mb = (peak_kb[0] if peak_kb else 0) / 1024
    size = sum(p.stat().st_size for p in out.glob("*.xml")) / 1e6
    print(f"export insurers: {took:.0f} s, peak RSS {peak_mb:.0f} MB (target < 200 MB), {size:.0f} MB written, "
          f"exit {done.returncode}: {done.stdout.strip().splitlines()[-1] if done.stdout else done.stderr[-300:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--part", default="workers,inclusions")
    parser.add_argument("--rounds", type=int, default=3, help="workers: rounds of 1 and 2 workers")
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL") or None
    parts = args.part.split(",")
    if "workers" in parts:
        if database_url:
            workers(database_url, args.count, args.rounds)
        else:
            print("workers: skipped (set DATABASE_URL to a PostgreSQL server)")
    if "inclusions" in parts:
        inclusions(database_url, args.big, args.count)
    if "export" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp) / "data"
            platform = Platform.prepared(Settings(data_dir=data_dir, database_url=database_url))
            Scenario.for_data_dir(data_dir, reset=True)
            try:
                started = time.perf_counter()
                _fill(platform, args.big)
                print(f"filled {args.big} inclusions in {time.perf_counter() - started:.0f} s", flush=True)
                _export(data_dir, database_url)
            finally:
                platform.close()


if __name__ == "__main__":
    main()
