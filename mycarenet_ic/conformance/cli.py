"""``mycarenet-ic conformance plan|report|run``: the acceptance scenarios, a caller's coverage of them from the
recorded traffic, and the scenarios played against a target. Hooked into ``mycarenet_ic.cli`` by
:func:`register`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mycarenet_ic.conformance.catalogue import SERVICES, Scenario, select

FORMATS = ("text", "html", "json", "junit")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``conformance`` command group, on the main parser's subcommands."""
    group = sub.add_parser("conformance", help="the acceptance scenarios per service: the plan, a caller's "
                           "coverage from the recorded traffic, or a run against a target").add_subparsers(
        dest="conformance_command", required=True)
    chosen = argparse.ArgumentParser(add_help=False)
    chosen.add_argument("--service", action="append", choices=SERVICES,
                        help="only this service's scenarios (repeatable; default: all)")
    chosen.add_argument("--scenario", action="append", metavar="ID",
                        help="only the scenarios whose id starts with ID (repeatable), e.g. md.error or tar.case")
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--format", choices=FORMATS, default=None,
                        help="text (default on a terminal), html (a page for the browser), json, or junit (JUnit XML "
                        "for a CI: one testcase per scenario)")
    output.add_argument("--out", metavar="FILE", help="write the report to FILE (default: standard output)")

    p = group.add_parser("plan", parents=[chosen], help="the catalogue: what to send, what comes back, how to "
                         "handle it, per scenario")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=cmd_plan)

    p = group.add_parser("report", parents=[common, chosen, output],
                         help="which scenarios a caller's recorded traffic exercises, and every deviation from the "
                         "contract the sandbox tolerated")
    p.add_argument("--caller", required=True,
                   help="the caller: a NIHII (care providers, organisations), a NISS (PSI staff, patients), or "
                   "the audit's label (quality:NIHII, quality:ssin#…)")
    p.add_argument("--since", help="only exchanges from this time (ISO 8601, UTC unless it says) or age (10m, 2h)")
    p.add_argument("--token", help="the data directory's admin token (default: read secrets/admin.token, owner "
                   "only; or MYCARENET_ADMIN_TOKEN)")
    p.set_defaults(func=cmd_report)

    p = group.add_parser("run", parents=[common, chosen, output],
                         help="play the scenarios as a client against a target speaking these contracts")
    p.add_argument("--target", action="append", required=True, metavar="URL",
                   help="where the services are: NAME=URL per service (integrated-care, memberdata, tarification, "
                   "mediprima, sts; repeatable), a base URL serving each at /NAME, or 'running' (the sandbox "
                   "running on --data-dir)")
    p.add_argument("--tokens", dest="token_kind", choices=("sts", "x509"), default="sts",
                   help="how the callers sign: sts (an STS holder-of-key token, production's way; the default) or "
                   "x509 (the sandbox's simple mode)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each answer (default 30)")
    p.set_defaults(func=cmd_run)


def _scenarios(args: argparse.Namespace) -> list[Scenario]:
    from mycarenet_ic.cli import _error

    found = select(args.service, args.scenario)
    if not found:
        raise SystemExit(_error("no scenario matches --service/--scenario: see 'mycarenet-ic conformance plan'"))
    return found


def cmd_plan(args: argparse.Namespace) -> int:
    from mycarenet_ic.textsafe import printable, printable_json

    scenarios = _scenarios(args)
    if args.json:
        print(printable_json([s.as_dict() for s in scenarios]))
        return 0
    service = None
    for s in scenarios:
        if s.service != service:
            service = s.service
            print(f"== {service} ({sum(x.service == service for x in scenarios)} scenarios)")
        caller = s.caller
        who = f"{caller.quality} {caller.nihii or caller.ssin}"
        for line in (f"{s.id}  [{s.operation}]  {s.title}", f"    as: {who}", f"    send: {s.send}",
                     f"    answer: {s.answer}", f"    handle: {s.handle}"):
            print(printable(line))
    return 0


def _write(args: argparse.Namespace, report: Any) -> None:
    from mycarenet_ic.conformance.report import render
    from mycarenet_ic.textsafe import printable

    suffixes = {".html": "html", ".json": "json", ".xml": "junit"}
    fmt = args.format or (suffixes.get(Path(args.out).suffix, "text") if args.out else "text")
    data = render(report, fmt)
    if args.out:
        Path(args.out).write_bytes(data)
        counts = report.counts()
        print(printable(f"{fmt} report of {counts['scenarios']} scenarios -> {args.out}"), file=sys.stderr)
    elif fmt == "text":
        for line in data.decode().splitlines():
            print(printable(line))
    else:
        sys.stdout.buffer.write(data)


def caller_labels(data_dir: Path, caller: str) -> tuple[set[str], str | None]:
    """The audit labels' identifying parts (after ``quality:``) ``--caller`` stands for, and the NISS when it
    is one. A NISS is a pseudonym in the label (as the audit writes it); a NIHII is itself, an 8-digit one (a
    pharmacy) with or without its ``000``."""
    from mycarenet_ic.domain.identifiers import is_valid_niss
    from mycarenet_ic.persistence.pseudonym import Pseudonymiser

    value = caller.strip()
    if ":" in value:
        return {value.partition(":")[2]}, None
    if not value.isdigit() or len(value) not in (8, 11):
        raise ValueError(f"--caller {caller!r}: a NIHII (8 or 11 digits), a NISS, or an audit label quality:…")
    parts = {value, value[:8] if value.endswith("000") else value + "000" if len(value) == 8 else value}
    ssin = value if is_valid_niss(value) else None
    if ssin:
        parts.add(f"ssin#{Pseudonymiser.from_data_dir(data_dir).pseudonym(ssin, 'caller')[:20]}")
    return parts, ssin


def cmd_report(args: argparse.Namespace) -> int:
    from mycarenet_ic.cli import _error, _inspector, _settings, _since
    from mycarenet_ic.conformance.report import judge, observe

    scenarios = _scenarios(args)
    settings = _settings(args)
    try:
        parts, ssin = caller_labels(settings.data_dir, args.caller)
        since = _since(args.since) if args.since else None
    except (ValueError, argparse.ArgumentTypeError) as exc:
        print(_error(exc), file=sys.stderr)
        return 2
    args.inspect_command = "conformance"  # audited as InspectConformance: reading raw traffic
    store = _inspector(args, f"caller={args.caller if not ssin else '[niss]'} report")
    try:
        summaries = [e for e in store.list(limit=10_000_000, after=0)
                     if e.caller.partition(":")[2] in parts and (since is None or e.at >= since)]

        def observed() -> Any:
            for summary in summaries:
                exchange = store.get(summary.id) if summary.id is not None else None
                if exchange is not None:
                    yield observe(str(exchange.id), exchange.at, exchange.service, exchange.caller,
                                  exchange.request, exchange.answer, ssin)

        report = judge("report", args.caller if not ssin else f"NISS {args.caller}", scenarios, observed())
    finally:
        store.close()
    _write(args, report)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from mycarenet_ic.cli import _error, _settings
    from mycarenet_ic.conformance.report import Result
    from mycarenet_ic.conformance.runner import Credentials, RunError, Runner, target_urls
    from mycarenet_ic.sandbox import read_running
    from mycarenet_ic.textsafe import printable

    scenarios = _scenarios(args)
    settings = _settings(args)
    try:
        urls = target_urls(args.target, lambda: read_running(settings.data_dir))
        credentials = Credentials(settings.data_dir, args.token_kind, urls.get("sts"))
        runner = Runner(urls, credentials, args.timeout)
        subject = ", ".join(args.target)

        def progress(done: int, total: int, result: Result) -> None:
            print(printable(f"[{done:>3}/{total}] {result.status:<9} {result.scenario.id}"), file=sys.stderr,
                  flush=True)

        report = runner.run(scenarios, subject, progress)
    except (RunError, FileNotFoundError) as exc:
        print(_error(exc), file=sys.stderr)
        return 2
    _write(args, report)
    counts = report.counts()
    print(printable(f"{counts['passed']} of {counts['scenarios']} scenarios passed"), file=sys.stderr)
    return 0 if counts["passed"] == counts["scenarios"] else 1
