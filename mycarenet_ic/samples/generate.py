"""``samples/``: per service and per acceptance scenario of the catalogue (the one list,
:mod:`mycarenet_ic.conformance.catalogue`), a ready request and the answer it gets, played against a sandbox
on the demo scenario by the conformance runner (the same hand-written bodies, callers and recipes):

``<service>/<scenario>/request.xml``  the SOAP envelope, **unsigned** (sign it before sending: see the README)
``<service>/<scenario>/blob.xml``     the commons ``Detail`` decoded (MemberData's AttributeQuery, the KMEHR
                                      tariff request), when the request has one
``<service>/<scenario>/answer.xml``   the signed answer as the sandbox gave it, volatile values normalised
``<service>/<scenario>/answer-blob.xml``  the answer's ``Detail`` decoded, when it has one

then ``README.md`` (the index), ``soapui-project.xml`` and ``postman_collection.json``, built from those files
(:mod:`mycarenet_ic.samples.collections`). ``samples/clients/`` (hand-written) is left alone.
"""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.clients.raw import RawExchange
from mycarenet_ic.conformance.catalogue import SERVICES, Scenario
from mycarenet_ic.conformance.facts import facts_of
from mycarenet_ic.conformance.runner import ACTIONS, Runner, describe
from mycarenet_ic.samples.normalise import Normaliser, comparable, decode, detail_of, encode, parse, pretty

REQUEST, BLOB, ANSWER, ANSWER_BLOB = "request.xml", "blob.xml", "answer.xml", "answer-blob.xml"
REFRESH = "mycarenet-ic samples write samples (against a sandbox started with --reset-scenario)"


class SampleError(Exception):
    """A scenario did not give the answer it describes: no sample is written for a wrong exchange."""


@dataclass(frozen=True)
class Sample:
    scenario: Scenario
    files: dict[str, bytes]

    @property
    def path(self) -> str:
        return f"{self.scenario.service}/{self.scenario.id}"


def action(scenario: Scenario) -> str:
    """The SOAPAction a scenario's request is sent with."""
    if scenario.service in ACTIONS:
        return ACTIONS[scenario.service]
    return f"{ns.INTEGRATED_CARE}:{scenario.operation.removesuffix('Request')}"


def _unsigned(request: etree._Element) -> etree._Element:
    """The request as it was before signing: an empty Header, no ``wsu:Id`` on the Body."""
    header = request.find(f"{{{ns.SOAP11_ENV}}}Header")
    if header is not None:
        for child in list(header):
            header.remove(child)
    body = request.find(f"{{{ns.SOAP11_ENV}}}Body")
    if body is not None:
        body.attrib.pop(f"{{{ns.WSU}}}Id", None)
    etree.cleanup_namespaces(request)
    return request


def _with_blob(root: etree._Element, normaliser: Normaliser) -> tuple[bytes, bytes | None]:
    """``root`` normalised, with its Detail's blob decoded, normalised and encoded again."""
    normaliser.element(root)
    detail = detail_of(root)
    blob = None
    if detail is not None:
        decoded = normaliser.element(parse(decode(detail)))
        detail.text = encode(etree.tostring(decoded, encoding="UTF-8"))
        blob = pretty(decoded)
    return pretty(root), blob


def sample_of(scenario: Scenario, exchange: RawExchange) -> Sample:
    """The files of one scenario's exchange; :class:`SampleError` unless it is the exchange the scenario
    describes (its answer's signature checked, the catalogue's matcher satisfied)."""
    if not exchange.verified:
        raise SampleError(f"{scenario.id}: {exchange.problem}")
    facts = facts_of(scenario.service, scenario.caller.quality, exchange.request, exchange.answer,
                     scenario.caller.ssin)
    if not scenario.matches(facts):
        raise SampleError(f"{scenario.id}: not the answer the scenario describes: {describe(facts)} (is the sandbox "
                          "on a fresh demo scenario? sandbox --reset-scenario)")
    normaliser = Normaliser()
    files: dict[str, bytes] = {}
    files[REQUEST], blob = _with_blob(_unsigned(parse(exchange.request)), normaliser)
    if blob is not None:
        files[BLOB] = blob
    files[ANSWER], answer_blob = _with_blob(parse(exchange.answer), normaliser)
    if answer_blob is not None:
        files[ANSWER_BLOB] = answer_blob
    return Sample(scenario, files)


def play(runner: Runner, scenarios: Sequence[Scenario],
         progress: Callable[[int, int, Scenario], None] | None = None) -> list[Sample]:
    """Each scenario played once, in the catalogue's order (the Integrated Care ones expect the demo scenario
    as it starts), and made a sample."""
    samples = []
    for n, scenario in enumerate(scenarios, 1):
        samples.append(sample_of(scenario, runner.play(scenario)))
        if progress is not None:
            progress(n, len(scenarios), scenario)
    return samples


def write(out: Path, samples: Sequence[Sample]) -> list[Path]:
    """The samples under ``out`` (each service's directory replaced), then the index and the collections."""
    from mycarenet_ic.samples.collections import derived

    out.mkdir(parents=True, exist_ok=True)
    for service in SERVICES:
        shutil.rmtree(out / service, ignore_errors=True)
    written = []
    for sample in samples:
        folder = out / sample.path
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in sample.files.items():
            (folder / name).write_bytes(data)
            written.append(folder / name)
    for name, data in derived(out).items():
        (out / name).write_bytes(data)
        written.append(out / name)
    return written


def read(out: Path, scenarios: Sequence[Scenario]) -> list[Sample]:
    """The samples written under ``out`` (those of ``scenarios`` found there)."""
    samples = []
    for scenario in scenarios:
        folder = out / scenario.service / scenario.id
        if folder.is_dir():
            samples.append(Sample(scenario, {f.name: f.read_bytes() for f in sorted(folder.iterdir())
                                             if f.is_file()}))
    return samples


def differences(committed: Path, fresh: Path) -> list[str]:
    """What differs between the committed samples and a fresh run: a line per file missing, extra or changed
    (beyond the calendar days, see :func:`~mycarenet_ic.samples.normalise.comparable`), with the first lines
    of the change."""
    problems = []

    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for service in SERVICES if (root / service).is_dir()
                for p in (root / service).rglob("*") if p.is_file()}

    mine, theirs = files(committed), files(fresh)
    problems += [f"{name}: committed, no longer generated" for name in sorted(mine - theirs)]
    problems += [f"{name}: generated, not committed" for name in sorted(theirs - mine)]
    for name in sorted(mine & theirs):
        old, new = comparable((committed / name).read_bytes()), comparable((fresh / name).read_bytes())
        if old != new:
            diff = difflib.unified_diff(old.decode().splitlines(), new.decode().splitlines(), lineterm="", n=0)
            problems.append(f"{name}: changed\n  " + "\n  ".join(list(diff)[2:12]))
    from mycarenet_ic.samples.collections import derived

    for name, data in derived(committed).items():
        path = committed / name
        if not path.exists() or path.read_bytes() != data:
            problems.append(f"{name}: not built from the committed samples")
    return problems
