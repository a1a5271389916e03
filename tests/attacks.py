"""What the attack tests over HTTP share: a snapshot of everything a request could leave behind, and the
checks of a refused request (a clean, signed eHealth fault that leaks nothing; one DENIED audit row and
nothing else changed)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, TypedDict

from sqlalchemy import Row, func, select

from mycarenet_ic.persistence.tables import audit_head, audit_log, metadata, replay_cache
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.wssec import Verifier
from tests import support

LEAKS = (b"Traceback", b"root:", b"/etc/passwd", b"File \"", b"sqlite", b"lxml")


class State(TypedDict):
    audit: Sequence[Row[Any]]  # (seq, outcome, detail) of every audit row
    replay: int
    links: int
    stored: dict[str, list[tuple[Any, ...]]]  # every other table's rows (inclusions, events, requests, …)


def state(sandbox: Sandbox) -> State:
    others = [t for t in metadata.sorted_tables if t not in (audit_log, audit_head, replay_cache)]
    with sandbox.platform.engine.connect() as conn:
        rows = conn.execute(select(audit_log.c.seq, audit_log.c.outcome, audit_log.c.detail)
                            .order_by(audit_log.c.seq)).all()
        replays = conn.execute(select(func.count()).select_from(replay_cache)).scalar_one()
        stored = {t.name: sorted((tuple(r) for r in conn.execute(select(t))), key=repr) for t in others}
    return State(audit=rows, replay=replays, links=len(sandbox.scenario.links), stored=stored)


def refused(answer: support.Answer, verifier: Verifier,
            codes: Collection[str] = ("SECURITY_ERROR",)) -> dict[str, str]:
    """``answer`` is the fault of a refused request: status 500, a signed soap:Client BusinessError of the
    Consumer with one of our ``codes``, nothing internal in it. Its detail, for more checks."""
    assert answer.status == 500, answer.body[:500]
    err = answer.error_detail()
    assert err["kind"] == "BusinessError" and err["faultcode"] == "soap:Client" and err["Origin"] == "Consumer"
    assert err["Code"] in codes, err
    for leak in LEAKS:
        assert leak not in answer.body
    assert answer.root is not None
    verifier.verify(answer.root)  # the fault itself is signed by the service
    return err


def only_denied(before: State, after: State, reason: str | None = None) -> None:
    """Between the two snapshots: one DENIED audit row (whose detail names ``reason``), nothing else."""
    new_rows = after["audit"][len(before["audit"]):]
    assert [r.outcome for r in new_rows] == ["DENIED"], new_rows
    if reason is not None:
        assert reason in new_rows[0].detail, new_rows[0].detail
    assert after["replay"] == before["replay"] and after["links"] == before["links"]
    assert after["stored"] == before["stored"]
