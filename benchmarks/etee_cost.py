"""What sealing the MemberData Detail (ETEE) costs, against a plain one (issue 14).

Starts a sandbox in this process (a temporary data directory, HTTPS, the simple X.509 mode for the client),
then calls MemberData ``--count`` times plain and ``--count`` times sealed, in alternating rounds of
``--round`` calls, one client after the other. A sealed call's time includes what the vendor's software does
(seal the query for the platform's ETK, open the answer with its own key) and what the platform does (open,
check the sender, seal the answer). Prints the throughput of each (calls/s), the median time per call and
their ratio. Loopback only.

    .venv/bin/python benchmarks/etee_cost.py [--count 40] [--round 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import GP_NIHII, GP_SSIN, MD_FACETS, PATIENT  # noqa: E402
from mycarenet_ic.clients.base import SignedSoapClient  # noqa: E402
from mycarenet_ic.clients.etee import open_answer, sealed_detail  # noqa: E402
from mycarenet_ic.clients.messages import attribute_query  # noqa: E402
from mycarenet_ic.config import Settings  # noqa: E402
from mycarenet_ic.domain.qualities import Quality  # noqa: E402
from mycarenet_ic.sandbox import Sandbox  # noqa: E402
from mycarenet_ic.security import etee  # noqa: E402
from mycarenet_ic.security.etk import APPLICATION, PLATFORM_CBE, EtkIdentifier, issue_etk  # noqa: E402
from mycarenet_ic.security.wssec import Signer  # noqa: E402

MD = "urn:be:fgov:ehealth:mycarenet:memberdata:protocol:v1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40, help="calls of each kind (default 40)")
    parser.add_argument("--round", type=int, default=10, help="calls of one kind before switching (default 10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        box = Sandbox(Settings(data_dir=Path(tmp), accepted_tokens="x509,saml-hok", inspector=False,
                               mutation_sync_seconds=3600), reset_scenario=True)
        box.start(0)
        try:
            return run(box, args.count, args.round)
        finally:
            box.stop()


def run(box: Sandbox, count: int, per_round: int) -> int:
    pki = box.platform.pki
    identity = pki.issue_holder(Quality.DOCTOR, GP_SSIN, GP_NIHII)
    encryption, my_etk = issue_etk(pki, Quality.DOCTOR, GP_SSIN, GP_NIHII)
    platform_etk = box.platform.etks.etk(next(e for e in box.platform.etks.entries()
                                              if EtkIdentifier("CBE", PLATFORM_CBE, APPLICATION) in e.identifiers))
    trust = etee.TrustCheck([pki.ca().certificate])
    client = SignedSoapClient("mycarenet-memberdata-v1.wsdl", f"{{{MD}}}MycarenetMemberDataSOAPBinding",
                              box.urls["memberdata"], Signer(identity), box.platform.answer_verifier(),
                              ca_file=pki.ca_file)
    common = {"Request": {"IsTest": True}, "InputReference": "bench",
              "Origin": {"Package": {"Name": {"_value_1": "bench"}, "License": {"Username": "u", "Password": "p"}},
                         "CareProvider": {"Nihii": {"Quality": "doctor", "Value": {"_value_1": GP_NIHII}}}}}
    end = dt.date.today() - dt.timedelta(days=1)
    query = attribute_query(GP_NIHII, PATIENT, end - dt.timedelta(days=30), end, MD_FACETS)

    def plain() -> Any:
        answer = client.call("memberDataConsultation", CommonInput=common,
                             Detail={"_value_1": query, "ContentType": "text/xml", "ContentEncoding": "none"})
        return bytes(answer.Return.Detail._value_1)

    def sealed() -> Any:
        answer = client.call("memberDataConsultation", CommonInput=common,
                             Detail=sealed_detail(query, identity, platform_etk, my_etk))
        return open_answer(answer.Return.Detail, encryption, trust)

    if b"status:Success" not in plain() or b"status:Success" not in sealed():  # warm up, and check both work
        print("error: a warm-up call did not succeed", file=sys.stderr)
        return 1
    times: dict[str, list[float]] = {"plain": [], "sealed": []}
    done = 0
    while done < count:
        n = min(per_round, count - done)
        for name, call in (("plain", plain), ("sealed", sealed)):
            for _ in range(n):
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
            print(f"  {name}: {len(times[name])}/{count}", file=sys.stderr)
        done += n
    rate = {k: len(v) / sum(v) for k, v in times.items()}
    median = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(f"MemberData, {count} calls of each kind, one client, HTTPS, in alternating rounds of {per_round}:")
    for name in ("plain", "sealed"):
        print(f"  {name:6}: {rate[name]:6.1f} calls/s   median {median[name]:6.1f} ms")
    print(f"  sealed/plain throughput: {rate['sealed'] / rate['plain']:.2f}  "
          f"(+{median['sealed'] - median['plain']:.1f} ms per call, client and platform together)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
