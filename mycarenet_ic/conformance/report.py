"""The conformance report: per scenario, exercised or not (``report``: by the caller's recorded traffic;
``run``: passed or not against a target) and the deviations the exchanges showed; written as JSON, JUnit XML
(one testcase per scenario: skipped = not exercised, failure = a deviation, or for a run a scenario whose
answer was not the expected one) or a self-contained HTML page."""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from mycarenet_ic.conformance.catalogue import Scenario
from mycarenet_ic.conformance.deviations import Checker, Deviation
from mycarenet_ic.conformance.facts import Facts, facts_of


@dataclass
class Result:
    scenario: Scenario
    exercised: bool = False
    exchanges: list[str] = field(default_factory=list)
    deviations: list[Deviation] = field(default_factory=list)
    problem: str | None = None  # a run's: why the scenario did not pass
    run: bool = False  # a run's result: "passed" / "failed", not "exercised" / "not exercised"

    @property
    def status(self) -> str:
        if not self.exercised:
            return "failed" if self.run else "not exercised"
        if self.deviations:
            return "deviation"
        return "passed" if self.run else "exercised"

    def as_dict(self) -> dict[str, Any]:
        return {**self.scenario.as_dict(), "status": self.status, "exercised": self.exercised,
                "exchanges": self.exchanges, "problem": self.problem,
                "deviations": [d.as_dict() for d in self.deviations]}


@dataclass
class Report:
    kind: str       # "report" (recorded traffic) or "run" (against a target)
    subject: str    # the caller reported on, or the target run against
    results: list[Result]
    other: list[Deviation] = field(default_factory=list)  # deviations of exchanges that exercise no scenario
    exchanges: int = 0
    generated: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def counts(self) -> dict[str, int]:
        out = {"scenarios": len(self.results), "exercised": sum(r.exercised for r in self.results),
               "deviations": sum(len(r.deviations) for r in self.results) + len(self.other),
               "exchanges": self.exchanges}
        if self.kind == "run":
            out["passed"] = sum(r.status == "passed" for r in self.results)
            out["failed"] = len(self.results) - out["passed"]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "generated": self.generated.isoformat(timespec="seconds"),
                "counts": self.counts(), "scenarios": [r.as_dict() for r in self.results],
                "other_deviations": [d.as_dict() for d in self.other]}


@dataclass(frozen=True)
class Observed:
    """One exchange to judge: its reference, when it arrived, and its facts."""

    ref: str
    at: dt.datetime
    facts: Facts


def observe(ref: str, at: dt.datetime, service: str, caller_label: str, request: bytes, answer: bytes,
            caller_ssin: str | None = None) -> Observed:
    """An exchange as the inspector recorded it (``caller_label``: the audit's, ``quality:…``)."""
    quality = caller_label.partition(":")[0]
    return Observed(ref, at, facts_of(service, quality, request, answer, caller_ssin))


def judge(kind: str, subject: str, scenarios: Sequence[Scenario], observed: Iterable[Observed]) -> Report:
    """Which scenarios the exchanges (oldest first) exercise, and their deviations."""
    results = {s.id: Result(s) for s in scenarios}
    checker = Checker()
    other: list[Deviation] = []
    count = 0
    for seen in observed:
        count += 1
        deviations = checker.check(seen.ref, seen.facts, seen.at)
        matched = [results[s.id] for s in scenarios if s.matches(seen.facts)]
        for result in matched:
            result.exercised = True
            result.exchanges.append(seen.ref)
            result.deviations += held_against(result.scenario, deviations)
        if not matched:
            other += deviations
    return Report(kind, subject, list(results.values()), other, count)


def held_against(scenario: Scenario, deviations: list[Deviation]) -> list[Deviation]:
    """The deviations that count for ``scenario``: not those it makes on purpose."""
    return [d for d in deviations if d.kind not in scenario.deliberate]


# -- output --------------------------------------------------------------------------------------------------
def to_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=1, ensure_ascii=False) + "\n"


def to_junit(report: Report) -> bytes:
    """JUnit XML: a testsuite per service, a testcase per scenario."""
    suites = etree.Element("testsuites", name=f"mycarenet-ic conformance {report.kind}: {report.subject}")
    services = list(dict.fromkeys(r.scenario.service for r in report.results))
    for service in services:
        mine = [r for r in report.results if r.scenario.service == service]
        suite = etree.SubElement(suites, "testsuite", name=f"conformance.{service}", tests=str(len(mine)),
                                 failures=str(sum(r.status in ("deviation", "failed") for r in mine)),
                                 skipped=str(sum(r.status == "not exercised" for r in mine)), errors="0",
                                 timestamp=report.generated.isoformat(timespec="seconds"))
        for result in mine:
            case = etree.SubElement(suite, "testcase", name=result.scenario.id,
                                    classname=f"conformance.{service}")
            if result.status == "not exercised":
                etree.SubElement(case, "skipped", message=f"not exercised: {result.scenario.title}")
            elif result.status == "failed":
                etree.SubElement(case, "failure", message=result.problem or "failed", type="failed").text = (
                    f"{result.scenario.title}\nexpected: {result.scenario.answer}\n{result.problem}")
            for deviation in result.deviations:
                etree.SubElement(case, "failure", message=deviation.message, type=deviation.kind).text = (
                    f"exchange {deviation.exchange}: {deviation.message}")
            if result.exchanges:
                etree.SubElement(case, "system-out").text = "exchanges: " + ", ".join(result.exchanges)
    if report.other:
        suite = etree.SubElement(suites, "testsuite", name="conformance.other-exchanges", tests="1",
                                 failures="1", skipped="0", errors="0")
        case = etree.SubElement(suite, "testcase", name="contract-shape", classname="conformance.other-exchanges")
        for deviation in report.other:
            etree.SubElement(case, "failure", message=deviation.message, type=deviation.kind).text = (
                f"exchange {deviation.exchange}: {deviation.message}")
    return etree.tostring(suites, encoding="UTF-8", xml_declaration=True, pretty_print=True)


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2733}
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #d5dbe1;
padding:.35rem .5rem;text-align:left;vertical-align:top}th{background:#eef2f5}
.passed td.status,.exercised td.status{color:#17692c;font-weight:600}
.deviation td.status,.failed td.status{color:#a3231b;font-weight:600}
.not-exercised td.status{color:#6b7580}details{margin:.2rem 0}
.counts span{display:inline-block;margin-right:1.2rem}.deviations li{color:#a3231b}
label{display:block;margin:.8rem 0}"""
_JS = """document.getElementById('only-open').addEventListener('change',function(e){
document.querySelectorAll('tr.scenario').forEach(function(row){
row.hidden=e.target.checked&&(row.classList.contains('passed')||row.classList.contains('exercised'));});});"""


def to_html(report: Report) -> str:
    e = html.escape
    counts = report.counts()
    rows = []
    for result in report.results:
        s = result.scenario
        deviations = "".join(f"<li>exchange {e(d.exchange)} ({e(d.kind)}): {e(d.message)}</li>"
                             for d in result.deviations)
        problem = f"<p class='problem'>{e(result.problem)}</p>" if result.problem else ""
        rows.append(
            f"<tr class='scenario {result.status.replace(' ', '-')}' id='{e(s.id)}'>"
            f"<td><code>{e(s.id)}</code></td><td>{e(s.service)}</td><td>{e(s.title)}"
            f"<details><summary>what to send, what comes back</summary><p><b>send</b> {e(s.send)}</p>"
            f"<p><b>answer</b> {e(s.answer)}</p><p><b>handle</b> {e(s.handle)}</p></details></td>"
            f"<td class='status'>{e(result.status)}</td>"
            f"<td>{e(', '.join(result.exchanges[:10]))}{' …' if len(result.exchanges) > 10 else ''}</td>"
            f"<td>{problem}<ul class='deviations'>{deviations}</ul></td></tr>")
    other = "".join(f"<li>exchange {e(d.exchange)} ({e(d.kind)}): {e(d.message)}</li>" for d in report.other)
    title = f"Conformance {report.kind}: {report.subject}"
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1>"
            f"<p>generated {e(report.generated.isoformat(timespec='seconds'))}</p><p class='counts'>"
            + "".join(f"<span id='count-{e(k)}'>{e(k)}: <b>{v}</b></span>" for k, v in counts.items())
            + "</p><label><input type='checkbox' id='only-open'> show only what is still to do</label>"
            "<table><thead><tr><th>scenario</th><th>service</th><th>what</th><th>status</th><th>exchanges</th>"
            f"<th>deviations</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            + (f"<h2>Exchanges that exercise no scenario</h2><ul class='deviations' id='other'>{other}</ul>"
               if other else "")
            + f"<script>{_JS}</script></body></html>\n")


def render(report: Report, fmt: str) -> bytes:
    if fmt == "json":
        return to_json(report).encode()
    if fmt == "junit":
        return to_junit(report)
    if fmt == "html":
        return to_html(report).encode()
    return to_text(report).encode()


def to_text(report: Report) -> str:
    lines = [f"Conformance {report.kind}: {report.subject}",
             "  ".join(f"{k}: {v}" for k, v in report.counts().items())]
    for result in report.results:
        lines.append(f"{result.status:<14} {result.scenario.id:<48} {result.scenario.title}")
        if result.problem:
            lines.append(f"{'':<15}{result.problem}")
        lines += [f"{'':<15}{d.kind}: exchange {d.exchange}: {d.message}" for d in result.deviations]
    lines += [f"other exchange {d.exchange} {d.kind}: {d.message}" for d in report.other]
    return "\n".join(lines) + "\n"
