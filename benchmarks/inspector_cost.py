"""What the inspector costs: MemberData throughput of two ``mycarenet-ic sandbox`` processes, one recording
every exchange (MYCARENET_INSPECTOR=1, the sandbox's default) and one not (=0), in alternating rounds (on,
off, off, on, …: the machine's drift falls on both), each round ``--count`` signed consultations at
``--clients`` concurrent clients under a time cap. Prints each round, the medians and the cost
(target: recording costs <= 10 % of the throughput). Loopback only.

    .venv/bin/python benchmarks/inspector_cost.py [--count 300] [--clients 16] [--rounds 6] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    GP_NIHII,
    GP_SSIN,
    SandboxProcess,
    median,
    memberdata_body,
    run_load,
    trust_ca,
)
from benchmarks.service_load import signed  # noqa: E402
from mycarenet_ic.domain.qualities import Quality  # noqa: E402
from mycarenet_ic.inspector.store import FILE_NAME, InspectorStore  # noqa: E402
from mycarenet_ic.security.pki import Pki  # noqa: E402
from mycarenet_ic.security.wssec import Signer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="requests per round")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=6, help="rounds per setting (alternating)")
    parser.add_argument("--seconds", type=float, default=60.0, help="time cap per round")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        boxes = {setting: SandboxProcess(Path(tmp) / setting, {"MYCARENET_INSPECTOR": "1" if setting == "on" else "0"})
                 for setting in results}
        try:
            signers = {setting: Signer(Pki(Path(tmp) / setting).issue_holder(Quality.DOCTOR, GP_SSIN, GP_NIHII),
                                       ttl_seconds=300) for setting in results}
            for setting, box in boxes.items():  # warm-up, not counted
                trust_ca(Path(tmp) / setting / "pki" / "ca.cert.pem")  # each sandbox has its own CA
                warm = [signed(signers[setting], memberdata_body()) for _ in range(16)]
                run_load(box.urls["memberdata"], warm, 1, 30)
            order = [s for pair in range(args.rounds) for s in (("on", "off") if pair % 2 == 0 else ("off", "on"))]
            for setting in order:
                messages = [signed(signers[setting], memberdata_body()) for _ in range(args.count)]
                trust_ca(Path(tmp) / setting / "pki" / "ca.cert.pem")
                got = run_load(boxes[setting].urls["memberdata"], messages, args.clients, args.seconds)
                print(got.line(f"memberdata inspector {setting}"), flush=True)
                results[setting].append(got.throughput)
        finally:
            for box in boxes.values():
                box.stop()
        store = InspectorStore(Path(tmp) / "on" / FILE_NAME)
        recorded = store.count()
        store.close()
        assert not (Path(tmp) / "off" / FILE_NAME).exists(), "the inspector was off: nothing is recorded"
    on, off = median(results["on"]), median(results["off"])
    cost = 1 - on / off
    print(f"exchanges recorded by the 'on' sandbox: {recorded}")
    print(f"median throughput: inspector on {on:.1f} req/s, off {off:.1f} req/s: recording costs {cost:.1%} "
          "(target <= 10 %)")
    print(json.dumps({"on": results["on"], "off": results["off"], "cost": cost, "recorded": recorded}))


if __name__ == "__main__":
    main()
