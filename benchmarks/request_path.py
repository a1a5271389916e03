"""Where a signed MemberData request's time goes inside the service, without HTTP: the sandbox's MemberData
endpoint called in this process as a WSGI application, one request after the other, each step of its path
timed; beside it the limit harness's steps, measured in the same run. What the two totals differ by is the
service's own work (its answer built from the facts, the audit row, the replay claim, the inspector); what a
served request costs beyond this total is the HTTP front's (TLS, parsing, thread hand-offs).

    .venv/bin/python benchmarks/request_path.py [--count 1000]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import limit_harness  # noqa: E402
from benchmarks._common import GP_NIHII, GP_SSIN, memberdata_body  # noqa: E402
from benchmarks.service_load import signed  # noqa: E402
from mycarenet_ic.config import Settings  # noqa: E402
from mycarenet_ic.domain.qualities import Quality  # noqa: E402
from mycarenet_ic.sandbox import Sandbox  # noqa: E402
from mycarenet_ic.security.pki import Pki  # noqa: E402
from mycarenet_ic.security.wssec import Signer  # noqa: E402
from mycarenet_ic.soap import endpoint as endpoint_module  # noqa: E402

WARM_UP = 20


class _Steps:
    """Seconds spent in each timed step, over every request."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)

    def timed(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
        return step


class _TimedDispatcher:
    def __init__(self, inner: Any, steps: _Steps) -> None:
        self.dispatch = steps.timed("use case and answer (dispatch)", inner.dispatch)


def _environ(message: bytes) -> dict[str, Any]:
    return {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "text/xml; charset=utf-8",
            "CONTENT_LENGTH": str(len(message)), "wsgi.input": io.BytesIO(message), "HTTP_SOAPACTION": ""}


def measure(count: int) -> tuple[dict[str, float], float, float]:
    """(µs per request of each step, CPU ms per request, wall ms per request) of ``count`` requests."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MYCARENET_TOKENS"] = "x509,saml-hok"
        settings = dataclasses.replace(Settings.from_env(), data_dir=Path(tmp) / "data")
        box = Sandbox(settings)
        box.start(0)
        parse = endpoint_module.parse_untrusted
        try:
            endpoint = box.apps["memberdata"]
            signer = Signer(Pki(settings.data_dir).issue_holder(Quality.DOCTOR, GP_SSIN, GP_NIHII), ttl_seconds=300)
            messages = [signed(signer, memberdata_body()) for _ in range(count + WARM_UP)]
            statuses: list[str] = []

            def call(message: bytes) -> None:
                b"".join(endpoint(_environ(message), lambda status, _headers: statuses.append(status)))

            for message in messages[:WARM_UP]:
                call(message)
            steps = _Steps()
            deps = endpoint.deps
            endpoint_module.parse_untrusted = steps.timed("parse the envelope", endpoint_module.parse_untrusted)
            deps.verifier.verify = steps.timed("verify the signature", deps.verifier.verify)
            endpoint._validate = steps.timed("references and XSD", endpoint._validate)
            endpoint._dispatcher = _TimedDispatcher(endpoint._dispatcher, steps)
            endpoint._audit = steps.timed("audit row and replay claim", endpoint._audit)
            deps.signer.sign = steps.timed("sign the answer", deps.signer.sign)
            deps.recorder.record = steps.timed("inspector", deps.recorder.record)
            statuses.clear()
            cpu, wall = time.process_time(), time.perf_counter()
            for message in messages[WARM_UP:]:
                call(message)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if statuses != ["200 OK"] * count:
                raise SystemExit(f"the service refused {sum(s != '200 OK' for s in statuses)} of the requests")
        finally:
            endpoint_module.parse_untrusted = parse
            box.stop()
    timed = {label: seconds / count * 1e6 for label, seconds in
                    sorted(steps.seconds.items(), key=lambda item: -item[1])}
    timed["the rest (reading, caller, operation, faults, serialising)"] = max(
        0.0, wall / count * 1e6 - sum(timed.values()))
    return timed, cpu / count * 1000, wall / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    harness = limit_harness.measure(args.count)
    steps, cpu_ms, wall_ms = measure(args.count)
    after = limit_harness.measure(args.count)
    best = max(harness, after, key=lambda figures: figures["per_cpu_second"])
    harness_ms = 1000 / best["per_cpu_second"]
    print(f"service in-process (no HTTP, one thread): {cpu_ms:.2f} ms CPU per request ({wall_ms:.2f} ms wall; "
          f"{args.count} MemberData requests)")
    for label, micros in steps.items():
        print(f"  {label:<58} {micros:7.0f} µs")
    print(f"limit harness (same run, the faster of before and after): {harness_ms:.2f} ms CPU per request")
    print("  " + ", ".join(f"{k} {v:.0f} µs" for k, v in best.items() if not k.startswith("per_")))
    print(f"in-process ratio harness / service: {harness_ms / cpu_ms:.2f} (what one process's share of a core "
          "allows before the HTTP front's cost)")


if __name__ == "__main__":
    main()
