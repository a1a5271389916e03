"""What an STS holder-of-key token costs the verifier, against an X.509 BinarySecurityToken (issue 13).

Signs ``--count`` messages of each kind with the sandbox PKI (in a temporary data directory), then verifies
each once (fresh messages: the replay cache sees every one) and prints the median and 95th percentile time of
``Verifier.verify`` per message, and the ratio. In-process, no network.

    .venv/bin/python benchmarks/token_cost.py [--count 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lxml import etree  # noqa: E402

from mycarenet_ic.domain.qualities import Quality  # noqa: E402
from mycarenet_ic.security.callers import caller_of  # noqa: E402
from mycarenet_ic.security.pki import Pki  # noqa: E402
from mycarenet_ic.security.saml11 import AssertionVerifier, NameIdentifier, build_assertion  # noqa: E402
from mycarenet_ic.security.sts_attributes import role  # noqa: E402
from mycarenet_ic.security.wssec import MemoryReplayCache, Signer, TokenKind, TrustStore, Verifier  # noqa: E402
from tests import support  # noqa: E402


def _timings(verifier: Verifier, messages: list[bytes]) -> list[float]:
    out = []
    for data in messages:
        root = etree.fromstring(data)
        start = time.perf_counter()
        caller_of(verifier.verify(root))
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pki = Pki(Path(tmp))
        pki.init()
        trust = TrustStore.from_pem(pki.ca().cert_pem)
        sts = AssertionVerifier(trust, [pki.service("sts").certificate])
        verifier = Verifier(trust, MemoryReplayCache(), assertions=sts, accepted=frozenset(TokenKind))
        simple = pki.issue_holder(Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
        identity = pki.issue_identity(Quality.DOCTOR, support.DOCTOR_SSIN, None)
        token = etree.fromstring(etree.tostring(build_assertion(
            pki.service("sts"), NameIdentifier.of_certificate(identity.certificate), identity.certificate,
            role(Quality.DOCTOR).certified(support.DOCTOR_SSIN, support.DOCTOR_NIHII))))
        kinds = {"x509": Signer(simple), "saml-hok": Signer(identity, token=token)}
        medians = {}
        for name, signer in kinds.items():
            messages = [support.to_bytes(signer.sign(support.envelope(support.aa_body()))) for _ in range(args.count)]
            times = sorted(_timings(verifier, messages))
            medians[name] = statistics.median(times)
            print(f"{name:9} verify: median {medians[name] * 1000:.2f} ms, p95 "
                  f"{times[int(len(times) * 0.95) - 1] * 1000:.2f} ms ({args.count} messages)")
        print(f"saml-hok / x509: {medians['saml-hok'] / medians['x509']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
