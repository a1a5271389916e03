"""Export of declarations and modifications to the insurers: one XML file per insurer and run.

Streams the events after the export cursor (constant memory: lxml's incremental writer, one file
open per insurer), validates every file against ``xsd/mycarenet-integratedcare-export-v1.xsd``
while reading it back incrementally, renames the files into place, and only then moves the cursor,
so a second run writes nothing new and a failed run can simply be repeated. ``since`` re-exports
everything from a date on without moving the cursor. The patient's NISS and the operator's (seed 000
annex, data 10: exported to the insurers) are unsealed here, and the run is audited as ``caller``'s.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from mycarenet_ic import contract, ns
from mycarenet_ic.persistence.affiliations import ScenarioAffiliations
from mycarenet_ic.persistence.inclusion_events import ExportEvent, SqlInclusionEvents
from mycarenet_ic.services.ports import FeedCursors

NS = ns.INTEGRATED_CARE_EXPORT
XSD = "mycarenet-integratedcare-export-v1.xsd"
CURSOR = "export-insurers"
UNKNOWN_INSURER = "000"


def _q(local: str) -> str:
    return f"{{{NS}}}{local}"


@dataclass
class ExportReport:
    events: int = 0
    files: dict[str, Path] = field(default_factory=dict)
    per_insurer: dict[str, int] = field(default_factory=dict)
    first_seq: int = 0
    last_seq: int = 0


class ExportConflict(RuntimeError):
    """Another export moved the cursor while this one ran; its files were removed."""


def _sub(parent: etree._Element, local: str, text: str | None) -> None:
    if text is not None:
        etree.SubElement(parent, _q(local)).text = text


def _event_element(event: ExportEvent, mutuality: str | None, registration: str | None) -> etree._Element:
    el = etree.Element(_q("Event"), Seq=str(event.seq), At=event.at.astimezone(dt.UTC).isoformat()
                       if event.at.tzinfo else event.at.isoformat() + "Z", Kind=event.kind)
    patient = etree.SubElement(el, _q("Patient"))
    _sub(patient, "Ssin", event.ssin)
    _sub(patient, "Mutuality", mutuality)
    _sub(patient, "RegistrationNumber", registration)
    inc: dict[str, Any] = event.inclusion
    block = etree.SubElement(el, _q("Inclusion"))
    _sub(block, "InclusionId", inc["id"])
    _sub(block, "Project", inc["project"])
    _sub(block, "Status", inc["status"])
    _sub(block, "DeclaredStartDate", inc["declared_start"])
    _sub(block, "StartDate", inc["start"])
    _sub(block, "DeclaredEndDate", inc.get("declared_end"))
    _sub(block, "EndDate", inc.get("end"))
    _sub(block, "ClosedByDeath", "true" if inc.get("closed_by_death") else "false")
    _sub(block, "ClosureReason", inc.get("closure") or ("death" if inc.get("closed_by_death") else None))
    if inc.get("consent"):
        consent = etree.SubElement(block, _q("Consent"))
        _sub(consent, "Agreement", inc["consent"])
        _sub(consent, "Date", inc["consent_date"])
    _sub(block, "Provider", inc.get("provider_nihii"))
    _sub(block, "Operator", event.operator)
    _sub(block, "Version", str(inc["version"]))
    return el


def validate_export(path: Path) -> None:
    """Validate an export file against its XSD while reading it incrementally."""
    schema = contract.schema(XSD)
    for _event, element in etree.iterparse(str(path), events=("end",), schema=schema, no_network=True,
                                           resolve_entities=False, load_dtd=False):
        if element.tag == _q("Event"):
            element.clear()
            # Drop what was read: cleared elements stay attached to the root otherwise.
            while element.getprevious() is not None:
                del element.getparent()[0]


def export_insurers(events: SqlInclusionEvents, cursors: FeedCursors, affiliations: ScenarioAffiliations,
                    out_dir: Path, since: dt.date | None = None,
                    progress: Callable[[int, int], None] | None = None, *, caller: str) -> ExportReport:
    out_dir.mkdir(parents=True, exist_ok=True)
    start = 0 if since else cursors.cursor(CURSOR)
    last = events.last_event_seq()
    total = events.count_events_after(start) if last > start else 0
    report = ExportReport(first_seq=start + 1, last_seq=last)
    if total == 0:
        return report
    created = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stamp = created.strftime("%Y%m%dT%H%M%SZ")
    tmp_files: dict[str, Path] = {}
    with contextlib.ExitStack() as stack:
        writers: dict[str, Any] = {}

        def writer(insurer: str) -> Any:
            if insurer not in writers:
                path = out_dir / f".insurer-{insurer}-{stamp}.xml.tmp"
                tmp_files[insurer] = path
                xf = stack.enter_context(etree.xmlfile(str(path), encoding="UTF-8"))
                xf.write_declaration()
                stack.enter_context(xf.element(_q("InsurerExport"), nsmap={"ex": NS}, Insurer=insurer,
                                               CreatedAt=created.isoformat(), FirstSeq=str(start + 1),
                                               LastSeq=str(last)))
                writers[insurer] = xf
            return writers[insurer]

        for event in events.events_after(start):
            if event.seq > last:
                break
            if since and event.at.date() < since:
                continue
            aff = affiliations.affiliation(event.ssin, event.at.date())
            insurer = aff.insurer if aff else UNKNOWN_INSURER
            writer(insurer).write(_event_element(event, aff.mutuality if aff else None,
                                                 aff.registration_number if aff else None))
            report.events += 1
            report.per_insurer[insurer] = report.per_insurer.get(insurer, 0) + 1
            if progress:
                progress(report.events, total)
    try:
        for tmp in tmp_files.values():
            validate_export(tmp)
        suffix = f"-since-{since.isoformat()}" if since else ""
        for insurer, tmp in tmp_files.items():
            final = out_dir / f"insurer-{insurer}-{start + 1:09d}-{last:09d}{suffix}.xml"
            tmp.replace(final)
            report.files[insurer] = final
    finally:
        for tmp in tmp_files.values():
            tmp.unlink(missing_ok=True)
    if not since and not cursors.move_cursor(CURSOR, start, last):
        for path in report.files.values():
            path.unlink(missing_ok=True)
        raise ExportConflict("another export ran at the same time; run this one again")
    events.record("ExportInsurers", "export " + " ".join(f"{k}={v}" for k, v in sorted(report.per_insurer.items()))
                  + f" events {start + 1}..{last}" + (f" since {since}" if since else ""), caller=caller)
    return report
