"""``mycarenet-ic scenario inject | faults | clear-faults``: the running sandbox's injected faults, through its
admin API (``POST``/``GET``/``DELETE /scenario/faults``; the rules: ``services/fault_injection.py``)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from mycarenet_ic.services.fault_injection import EFFECTS, FaultRuleError, parse_rule
from mycarenet_ic.textsafe import printable, printable_json

_RULE_OPTIONS = ("id", "effect", "service", "operation", "patient", "caller", "delay_ms", "times", "until",
                 "for_seconds")


def register(scenario: Any, common: argparse.ArgumentParser) -> None:
    """Add the fault commands to the ``scenario`` subcommands."""
    p = scenario.add_parser("inject", parents=[common],
                            help="make an operation answer late, with a SystemError (Retry), a 503 or no answer")
    p.add_argument("--effect", required=True, choices=EFFECTS)
    p.add_argument("--service", help="the service (as in sandbox.json: memberdata, integrated-care, …; default any)")
    p.add_argument("--operation", help="the WSDL operation, e.g. memberDataConsultation (default: any)")
    p.add_argument("--patient", metavar="NISS", help="only requests that carry this NISS")
    p.add_argument("--caller", metavar="NIHII|NISS", help="only requests of this verified caller")
    p.add_argument("--delay-ms", type=int, help="wait first (required for --effect delay)")
    p.add_argument("--times", type=int, help="how many requests (default 1 unless a period is given)")
    p.add_argument("--for-seconds", type=int, help="every request during so many seconds from now")
    p.add_argument("--until", help="every request until then (ISO 8601 with a zone, e.g. 2026-12-02T10:00:00Z)")
    p.add_argument("--id", help="the rule's name (default: generated), for clear-faults --id")
    p.set_defaults(func=cmd_inject)
    p = scenario.add_parser("faults", parents=[common], help="list the injected faults in force")
    p.set_defaults(func=cmd_faults)
    p = scenario.add_parser("clear-faults", parents=[common], help="remove every injected fault (or one: --id)")
    p.add_argument("--id", help="remove only this rule")
    p.set_defaults(func=cmd_clear_faults)


def _admin(args: argparse.Namespace, method: str, path: str, payload: dict[str, Any] | None = None) -> int:
    from mycarenet_ic.cli import _admin_call, _settings

    print(printable_json(_admin_call(_settings(args).data_dir, method, path, payload)))
    return 0


def cmd_inject(args: argparse.Namespace) -> int:
    rule = {key: getattr(args, key) for key in _RULE_OPTIONS if getattr(args, key, None) is not None}
    try:
        parse_rule(rule, dt.datetime.now(dt.UTC))  # the sandbox checks it again; a mistake is said here first
    except FaultRuleError as exc:
        flag = str(exc).split(" ", 1)[0]
        hint = f" (--{flag.replace('_', '-')})" if flag in _RULE_OPTIONS else ""
        print(printable(f"error: {exc}{hint}"), file=sys.stderr)
        return 2
    return _admin(args, "POST", "/scenario/faults", rule)


def cmd_faults(args: argparse.Namespace) -> int:
    return _admin(args, "GET", "/scenario/faults")


def cmd_clear_faults(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    return _admin(args, "DELETE", "/scenario/faults" + (f"/{quote(args.id, safe='')}" if args.id else ""))
