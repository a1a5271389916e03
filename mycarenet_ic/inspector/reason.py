"""Where the sandbox says why: a fault's answer, in sandbox mode only, names where its true reason is read.

The client gets production's fault unchanged: the generic text of a security refusal, in the eHealth
``BusinessError``/``SystemError`` detail. The detail's schema has no place for more (``ErrorType`` is a
closed sequence — Origin, Code, Message+, Retry?, Contact? — and ``SOAErrorType`` adds only Environment),
and a second Message or a Contact would be a body production never sends. So the pointer is an HTTP
response header, outside the signed envelope and outside any schema:

    X-Sandbox-Reason: audit-row=42; inspector=https://127.0.0.1:8443/inspector/audit/42;
                      cli="mycarenet-ic audit show --last"

The sandbox (:class:`mycarenet_ic.sandbox.Sandbox`) gives its endpoints a :class:`ReasonPointer`; the
production-style entry (``mycarenet_ic.wsgi``) gives none, and its answers never carry the header.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER = "X-Sandbox-Reason"
CLI = "mycarenet-ic audit show --last"


@dataclass
class ReasonPointer:
    """The sandbox's: ``inspector_url`` is the web application's address once it is served ("" while it is
    not, or when the inspector is off: then the header names the audit row only)."""

    inspector_url: str = ""

    def header(self, audit_seq: int | None) -> tuple[str, str]:
        """The header of a fault whose audit row is ``audit_seq`` (None: the row could not be written)."""
        parts = [f"audit-row={audit_seq}" if audit_seq is not None else "audit-row=none"]
        if self.inspector_url and audit_seq is not None:
            parts.append(f"inspector={self.inspector_url.rstrip('/')}/inspector/audit/{audit_seq}")
        parts.append(f'cli="{CLI}"')
        return HEADER, "; ".join(parts)


def positive(raw: str) -> int:
    """``--last N``: a count of one or more."""
    import argparse

    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"give a number of refusals, 1 or more (not {raw!r})")
    return value


def refusal_lines(rows: list[dict[str, object]], web_url: str = "") -> list[str]:
    """``audit show --last``: each refused request (audit rows, oldest first) with its true reason; with
    ``web_url`` (a running sandbox's web application, its inspector on), the inspector's page of each."""
    if not rows:
        return ["no refused request in the audit"]
    lines: list[str] = []
    for row in rows:
        seq = row["seq"]
        patient = str(row["patient"])[:12] if row["patient"] else "-"
        lines += [f"audit row {seq} at {row['at']}: {row['outcome']} {row['service']} {row['operation']}",
                 f"  caller: {row['caller']}  patient: {patient}  request id: {row['request_id'] or '-'}",
                 f"  true reason: {row['detail'] or '(none recorded)'}"]
        if web_url:
            lines.append(f"  inspector: {web_url.rstrip('/')}/inspector/audit/{seq}")
    return lines
