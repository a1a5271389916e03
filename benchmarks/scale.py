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
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import GP_NIHII, GP_SSIN, SandboxProcess, memberdata_body, run_load  # noqa: E402
from benchmarks.service_load import signed  # noqa: E402
from mycarenet_ic.app import Platform  # noqa: E402
from mycarenet_ic.config import Settings  # noqa: E402
from mycarenet_ic.domain.qualities import Quality  # noqa: E402
from mycarenet_ic.persistence.tables import ic_event, ic_inclusion, ic_request  # noqa: E402
from mycarenet_ic.security.wssec import Signer  # noqa: E402
from mycarenet_ic.server import free_port, wait_ready  # noqa: E402
from stubs.scenario import Scenario  # noqa: E402

IC_NS = "urn:be:fgov:ehealth:mycarenet:integratedcare:protocol:v1"


def workers(database_url: str, count: int) -> None:
    results = {}
    for n in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp) / "data"
            platform = Platform(Settings(data_dir=data_dir, database_url=database_url))
            Scenario.for_data_dir(data_dir, reset=True)
            signer = Signer(platform.pki.issue_holder(Quality.DOCTOR, GP_SSIN, GP_NIHII), ttl_seconds=300)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            env = {k: v for k, v in os.environ.items()} | {
                "MYCARENET_DATA_DIR": str(data_dir), "DATABASE_URL": database_url, "MYCARENET_PUBLIC_URL": base}
            proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", str(n), "-k", "gthread", "--threads",
                                     "24", "-b", f"127.0.0.1:{port}", "mycarenet_ic.wsgi:create_app()"],
                                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_ready(f"{base}/memberdata?wsdl", timeout=60)
                messages = [signed(signer, memberdata_body()) for _ in range(count + 16)]
                run_load(f"{base}/memberdata", messages[:16], 4, 30)  # warm-up: every worker's caches
                got = run_load(f"{base}/memberdata", messages[16:], 16, 120)
                print(got.line(f"memberdata, {n} worker(s)"), flush=True)
                results[n] = got.throughput
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
                platform.close()
    print(f"2 workers / 1 worker: {results[2] / results[1]:.2f}x (target >= 1.8)")


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
        platform = Platform(Settings(data_dir=data_dir, database_url=database_url))
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
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL") or None
    parts = args.part.split(",")
    if "workers" in parts:
        if database_url:
            workers(database_url, args.count)
        else:
            print("workers: skipped (set DATABASE_URL to a PostgreSQL server)")
    if "inclusions" in parts:
        inclusions(database_url, args.big, args.count)
    if "export" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp) / "data"
            platform = Platform(Settings(data_dir=data_dir, database_url=database_url))
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
