"""The service under load: signed MemberData consultations, inclusion declarations and tariff consultations
over HTTP against ``mycarenet-ic sandbox`` (a child process, SQLite) or, with ``--deployment serve``,
``mycarenet-ic serve --sandbox`` (gunicorn workers on DATABASE_URL, or unset on the data directory's SQLite),
at 1, 4, 16 and 32 concurrent clients; then MemberData's and the declarations' throughput divided by their
limit harnesses', measured in the same run. Bounded: a fixed number of requests per level and a time cap. Loopback only.

    .venv/bin/python benchmarks/service_load.py [--count 200] [--levels 1,4,16,32] [--seconds 60]
    [DATABASE_URL=postgresql://...] .venv/bin/python benchmarks/service_load.py --deployment serve [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

import requests
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import declaration_harness, limit_harness  # noqa: E402
from benchmarks._common import (  # noqa: E402
    GP_NIHII,
    GP_SSIN,
    CpuMeter,
    SandboxProcess,
    declaration_body,
    memberdata_body,
    run_load,
    tariff_body,
)
from mycarenet_ic import ns  # noqa: E402
from mycarenet_ic.domain.identifiers import make_niss  # noqa: E402
from mycarenet_ic.domain.qualities import Quality  # noqa: E402
from mycarenet_ic.security.pki import Pki  # noqa: E402
from mycarenet_ic.security.wssec import Signer  # noqa: E402


def signed(signer: Signer, body: str) -> bytes:
    env = etree.fromstring(f'<soap:Envelope xmlns:soap="{ns.SOAP11_ENV}"><soap:Header/><soap:Body>{body}'
                           "</soap:Body></soap:Envelope>".encode())
    return etree.tostring(signer.sign(env))


def add_patients(box: SandboxProcess, data_dir: Path, count: int, offset: int) -> list[str]:
    """``count`` fresh persons in the running sandbox's National Register (bulk admin change)."""
    ssins = [make_niss(dt.date(1940, 1, 1) + dt.timedelta(days=(offset + i) // 400), 501 + (offset + i) % 400)
             for i in range(count)]
    token = (data_dir / "secrets" / "admin.token").read_text().strip()
    answer = requests.post(box.urls["scenario-admin"].rstrip("/") + "/scenario/changes", timeout=60,
                           headers={"Authorization": f"Bearer {token}"},
                           json={"action": "add-persons", "persons": [
                               {"ssin": s, "last_name": "Bench", "first_names": ["B"], "birth_date": None,
                                "sex": "unknown"} for s in ssins]})
    answer.raise_for_status()
    return ssins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="requests per operation and level")
    parser.add_argument("--levels", default="1,4,16,32")
    parser.add_argument("--seconds", type=float, default=60.0, help="time cap per operation and level")
    parser.add_argument("--only", default="", help="comma-separated operations to run (default: all)")
    parser.add_argument("--deployment", choices=("sandbox", "serve"), default="sandbox",
                        help="sandbox (one process, SQLite) or serve (gunicorn workers on DATABASE_URL, else SQLite)")
    parser.add_argument("--workers", type=int, default=2, help="serve's worker processes (default: 2)")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    wanted = [n for n in ("memberdata", "integrated-care") if not args.only or n in args.only.split(",")]
    before = {name: module.measure(300)["per_second"] for name, module in
              (("memberdata", limit_harness), ("integrated-care declare", declaration_harness))
              if name.split()[0] in wanted}
    results: dict[str, dict[int, float]] = {}
    tails: dict[str, dict[int, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        box = SandboxProcess(data_dir, deployment=args.deployment, workers=args.workers)
        try:
            signer = Signer(Pki(data_dir).issue_holder(Quality.DOCTOR, GP_SSIN, GP_NIHII), ttl_seconds=300)
            patients = add_patients(box, data_dir, args.count * len(levels), 0)
            for level in levels:
                runs = {
                    "memberdata": (box.urls["memberdata"], [signed(signer, memberdata_body())
                                                            for _ in range(args.count)]),
                    "integrated-care declare": (box.urls["integrated-care"], [
                        signed(signer, declaration_body(patients.pop(), "91000252", f"_b{level}x{i}"))
                        for i in range(args.count)]),
                    "tarification": (box.urls["tarification"], [signed(signer, tariff_body())
                                                                 for _ in range(args.count)]),
                }
                for name, (url, messages) in runs.items():
                    if args.only and name.split()[0] not in args.only.split(","):
                        continue
                    # Warm-up, not counted: as many clients as the level, so that every worker of `serve` has
                    # filled its own caches (the National Register's persons, CoBrHa's answers) before the clock.
                    warm = min(max(8, 2 * level), len(messages) // 4)
                    run_load(url, messages[:warm], level, 30)
                    with CpuMeter(box.proc.pid) as cpu:
                        got = run_load(url, messages[warm:], level, args.seconds)
                    print(got.line(name), flush=True)
                    # the server's CPU per request: rises with the clients where threads contend for one GIL
                    print(f"  server CPU {cpu.server * cpu.seconds / max(1, got.count) * 1000:.2f} ms per request; "
                          + cpu.line(), flush=True)
                    results.setdefault(name, {})[level] = got.throughput
                    tails.setdefault(name, {})[level] = (got.percentile(50), got.percentile(99))
        finally:
            box.stop()
    for name, by_level in tails.items():
        for level, (p50, p99) in by_level.items():
            if level >= 16:
                print(f"tail {name} at {level} clients: p99 / p50 = {p99:.0f} / {p50:.0f} ms = {p99 / p50:.2f} "
                      "(target <= 2)")
    summary: dict[str, object] = {"throughput": results, "tails": tails}
    # The harnesses each on one core, the same run: a reader compares machines by them. Measured before and
    # after the load (a shared VM's speed drifts by a quarter within minutes); the ratio takes the faster one.
    for name, harness_module, target in (("memberdata", limit_harness, 0.85),
                                         ("integrated-care declare", declaration_harness, 0.6)):
        if name not in results:
            continue
        harness = max(before[name], harness_module.measure(300)["per_second"])
        best = max(results[name].values())
        print(f"{harness_module.__name__.rsplit('.', 1)[-1]} (same run): {harness:.1f} requests/s on one core "
              f"(the faster of before the load, {before[name]:.1f}, and after it)")
        print(f"ratio {name} service / its limit harness: {best:.1f} / {harness:.1f} = {best / harness:.2f} "
              f"(target >= {target}; {args.deployment})")
        summary[f"{name} harness"], summary[f"{name} ratio"] = harness, best / harness
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
