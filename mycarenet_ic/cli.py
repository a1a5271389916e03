"""``mycarenet-ic``: the sandbox, its PKI, its audit log and its scenario, from the command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mycarenet_ic.cli_support import CliError, iso_date, service_url
from mycarenet_ic.config import Settings, token_kinds
from mycarenet_ic.domain.identifiers import InvalidIdentifier
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.mounts import DEFAULT_PORT
from mycarenet_ic.textsafe import printable, printable_json

# Whatever is printed from stored rows, remote answers, files or exceptions goes through printable():
# an escape sequence in an audit row or a scenario name is shown, never obeyed by the terminal.


DEFAULT_P12_PASSWORD = "sandbox"  # noqa: S105 - printed by `certs issue`: a test keystore, not a secret


def _error(message: object) -> str:
    """A one-line ``error: …`` message, control characters shown escaped."""
    return f"error: {printable(str(message))}"


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(data_dir=args.data_dir, host=getattr(args, "host", None),
                             tls=False if getattr(args, "plain_http", False) else None,
                             accepted_tokens=getattr(args, "tokens", None), inspector=getattr(args, "inspector", None))


def _token_kinds(raw: str) -> str:
    try:
        return ",".join(token_kinds(raw))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_certs_init(args: argparse.Namespace) -> int:
    from mycarenet_ic.security.pki import Pki

    pki = Pki(_settings(args).data_dir)
    written = pki.init(force=args.force)
    print(printable(f"sandbox PKI in {pki.dir}: {len(written)} files written")
          + ("" if written else " (already there)"))
    return 0


def cmd_certs_issue(args: argparse.Namespace) -> int:
    """An identity certificate as eHealth issues it (no quality: the STS certifies that), with ``--hok`` a
    separate holder-of-key certificate for the same holder; ``--with-quality`` the simple X.509 mode's."""
    from mycarenet_ic.security.pki import Pki, write_keypair

    if args.with_quality and (args.identity or args.hok):
        print(_error("--with-quality is the simple X.509 mode: it takes neither --identity nor --hok"),
              file=sys.stderr)
        return 2
    pki = Pki(_settings(args).data_dir)
    if not pki.initialised:
        pki.init()
    quality = Quality(args.quality)
    issue = pki.issue_holder if args.with_quality else pki.issue_identity
    try:
        pairs = {"": issue(quality, args.ssin, args.nihii, valid_days=args.days)}
        if args.hok:
            pairs["hok"] = pki.issue_identity(quality, args.ssin, args.nihii, valid_days=args.days)
        if args.etk:  # an encryption key pair, its ETK registered in the sandbox's ETK depot
            from mycarenet_ic.security.etk import issue_etk

            pairs["etk"], etk = issue_etk(pki, quality, args.ssin, args.nihii, valid_days=args.days)
    except (InvalidIdentifier, ValueError) as exc:
        print(_error(exc), file=sys.stderr)
        return 2
    stem = args.name or f"{quality.value}-{args.ssin or args.nihii}"
    print(printable(f"subject: {pairs[''].certificate.subject.rfc4514_string()}"))
    for prefix, pair in pairs.items():
        # A keystore Java's keytool and .NET open: a password (tools refuse an empty one) and the CA in the chain.
        paths = write_keypair(pair, Path(args.out), f"{stem}-{prefix}" if prefix else stem,
                              args.p12_password.encode(), chain=[pki.ca().certificate])
        for kind, path in paths.items():
            print(printable(f"{prefix + ' ' if prefix else ''}{kind}: {path}"))
    if args.etk:
        (Path(args.out) / f"{stem}.etk").write_bytes(etk)
        print(printable(f"etk: {Path(args.out) / f'{stem}.etk'} (in the ETK depot)"))
    print(printable(f"p12 password: {args.p12_password}" + (" (the default; --p12-password sets another)"
                                                              if args.p12_password == DEFAULT_P12_PASSWORD else "")))
    print(printable(f"trust anchor: {pki.dir / 'ca.cert.pem'}"))
    if not args.with_quality:
        from mycarenet_ic.security.sts_attributes import ROLES

        role = quality if quality in ROLES else Quality.CITIZEN  # PSI staff: a person; the roles are the AA's
        print(printable(f"no quality in the certificate: `mycarenet-ic sts token --as {role.value}` gets a "
                        "token that certifies it (or issue --with-quality for the simple X.509 mode)"))
    return 0


def cmd_sts_token(args: argparse.Namespace) -> int:
    """Ask the sandbox's STS for a holder-of-key token and print the assertion."""
    import xmlsec
    from lxml import etree

    from mycarenet_ic.clients.sts import StsClient
    from mycarenet_ic.errors import MycarenetError, UpstreamUnavailable
    from mycarenet_ic.security.pki import KeyPair, Pki
    from mycarenet_ic.security.wssec import TrustStore

    if bool(args.hok_cert) != bool(args.hok_key):
        print(_error("give --hok-cert and --hok-key together"), file=sys.stderr)
        return 2
    settings = _settings(args)
    pki = Pki(settings.data_dir)
    if not pki.initialised:
        print(_error(f"no sandbox PKI in {pki.dir}: give the sandbox's --data-dir"), file=sys.stderr)
        return 1
    try:
        identity = KeyPair(Path(args.key).read_bytes(), Path(args.cert).read_bytes())
        hok = KeyPair(Path(args.hok_key).read_bytes(), Path(args.hok_cert).read_bytes()) if args.hok_cert else None
        url = service_url(args.url, settings.data_dir, "sts")
        client = StsClient(url, identity, TrustStore.from_pem(pki.ca().cert_pem), pki.service("sts").certificate,
                           holder_of_key=hok, ca_file=pki.ca_file, timeout=settings.upstream_timeout_seconds)
        token = client.token(Quality(args.quality))
    except UpstreamUnavailable as exc:
        raise CliError(f"{exc.reason}: the STS did not answer: is the sandbox running? (or check --url)") from None
    except MycarenetError as exc:
        print(_error(exc.reason), file=sys.stderr)
        return 1
    except KeyError:
        print(_error(f"the sandbox on {settings.data_dir} runs no STS; give --url"), file=sys.stderr)
        return 1
    except (ValueError, xmlsec.Error) as exc:
        print(_error(f"cannot use that certificate and key: {exc}"), file=sys.stderr)
        return 1
    print(etree.tostring(token.assertion, pretty_print=not args.raw, encoding="unicode").rstrip("\n"))
    return 0


def _say(text: str) -> None:
    """Print one line of the sandbox's progress; once standard output is gone, go on quietly.

    A closed pipe (``mycarenet-ic sandbox | head -1``) must not take the sandbox down halfway or leave
    it unstoppable: the rest of its output goes to ``os.devnull``, and what was buffered with it; the
    sandbox then stops as on a signal (:func:`mycarenet_ic.lifecycle.wait_until_stopped`).
    """
    from mycarenet_ic.lifecycle import OUTPUT_LOST

    try:
        print(text, flush=True)
    except (BrokenPipeError, OSError, ValueError):
        OUTPUT_LOST.set()
        _silence_stdout()


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        # On the descriptor itself: what is still buffered is flushed there at exit, not onto a dead pipe.
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        sys.stdout = open(os.devnull, "w")  # stays open as stdout until the process ends
    finally:
        os.close(devnull)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from mycarenet_ic.lifecycle import settle_heap, wait_until_stopped
    from mycarenet_ic.sandbox import Sandbox

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Signals first: a SIGTERM or Ctrl-C that comes during the start stops the sandbox once it is up.
    done = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        done.set()

    previous = {signum: signal.signal(signum, _stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    sandbox = Sandbox(_settings(args), reset_scenario=args.reset_scenario)
    try:
        try:
            urls = sandbox.start(args.port)
        except Exception as exc:  # noqa: BLE001 - one line, not a traceback; the finally stops what started
            from mycarenet_ic.cli_support import start_failure

            message, code = start_failure(exc, sandbox.settings.host, args.port)
            print(_error(message), file=sys.stderr)
            return code
        settle_heap()
        _say(printable(f"data directory: {sandbox.settings.data_dir.resolve()}"))
        _say(printable(f"database: {sandbox.settings.effective_database_url.split('@')[-1]}"))
        _say(printable(f"trust anchor (TLS and signatures): {sandbox.platform.pki.ca_file}"))
        for name, url in urls.items():
            _say(printable(f"READY {name} {url}"))
        _say("Ctrl-C stops the sandbox.")
        wait_until_stopped(done)  # a signal, or standard output closed
    finally:
        sandbox.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    _say("stopped")
    return 0


def cmd_idp_enrol(args: argparse.Namespace) -> int:
    """Enrol a person in the sandbox IdP: a new TOTP secret, printed with its otpauth:// URI and a QR code."""
    import qrcode

    from mycarenet_ic.persistence.pseudonym import Pseudonymiser
    from mycarenet_ic.web.idp import TotpSecrets

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        enrolment = TotpSecrets(settings.data_dir, Pseudonymiser.from_data_dir(settings.data_dir)).enrol(args.ssin)
    except InvalidIdentifier as exc:
        print(_error(f"the NISS is not valid: {exc.reason}"), file=sys.stderr)
        return 1
    print(f"secret: {enrolment.secret}")
    print(f"uri: {enrolment.uri}")
    if not args.no_qr:
        qr = qrcode.QRCode(border=1)
        qr.add_data(enrolment.uri)
        qr.print_ascii(out=sys.stdout, invert=True)
    print("Scan it (or type the secret) in an authenticator app; sign in at the sandbox's web URL "
          "(its READY web line) with this NISS and the app's code. Enrolling again replaces the secret.")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from mycarenet_ic.persistence.audit import verify_chain
    from mycarenet_ic.persistence.db import make_engine, migrate

    engine = make_engine(_settings(args).effective_database_url)
    try:
        migrate(engine)
        report = verify_chain(engine)
    finally:
        engine.dispose()
    if report.ok:
        print(f"audit chain OK: {report.rows} rows")
        return 0
    print(printable(f"audit chain BROKEN at row {report.broken_seq}: {report.reason}"))
    return 1


def _operator(args: argparse.Namespace, data_dir: Path) -> str:
    """Who reads the audit: the operator of the data directory, proved by its admin token (the
    owner-only ``secrets/admin.token``, or ``--token`` / ``MYCARENET_ADMIN_TOKEN`` matching it)."""
    import getpass
    import hmac

    from mycarenet_ic.stubs.admin import admin_token

    given = args.token or os.environ.get("MYCARENET_ADMIN_TOKEN")
    if not data_dir.is_dir():
        raise SystemExit(_error(f"no data directory at {data_dir}: give --data-dir (or MYCARENET_DATA_DIR)"))
    try:
        stored = admin_token(data_dir)
    except OSError:
        raise SystemExit(_error("reading the audit needs the operator's credentials: run as the owner of "
                                f"{data_dir} or pass --token (MYCARENET_ADMIN_TOKEN)")) from None
    if given is not None and not hmac.compare_digest(given.encode(), stored.encode()):
        raise SystemExit(_error("that is not this data directory's admin token (secrets/admin.token)"))
    return f"operator:{getpass.getuser()}"


def cmd_audit_show(args: argparse.Namespace) -> int:
    from mycarenet_ic.persistence.audit import AuditEntry, SqlAuditLog
    from mycarenet_ic.persistence.db import make_engine, migrate
    from mycarenet_ic.persistence.pseudonym import Pseudonymiser

    settings = _settings(args)
    operator = _operator(args, settings.data_dir)
    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine)
        log = SqlAuditLog(engine, Pseudonymiser.from_data_dir(settings.data_dir))
        rows = log.refusals(args.last) if args.last else log.rows(limit=args.limit, outcome=args.outcome)
        # Reading the audit is itself audited (after the read: the rows shown are those before it).
        log.append(AuditEntry("cli", "AuditShow", caller=operator, detail=f"rows={len(rows)} " + (
            f"last={args.last}" if args.last else f"limit={args.limit} outcome={args.outcome or 'any'}")))
    finally:
        engine.dispose()
    if args.last:  # the true reasons, which the client only saw as the fault's generic text
        from mycarenet_ic.inspector.reason import refusal_lines

        for line in refusal_lines(rows, _running_web(settings.data_dir) if settings.inspector else ""):
            print(printable(line))
        return 0
    for row in rows:
        # One row, one line: every stored field is shown escaped (a SOAPAction is stored as it was sent).
        f = {key: printable(str(value)) for key, value in row.items()}
        patient = f["patient"][:12] if row["patient"] else "-"
        print(f"{f['seq']:>7} {f['at']} {f['outcome']:<6} {f['service']:<20} {f['operation']:<36} "
              f"{f['caller']:<28} patient={patient} req={f['request_id'] if row['request_id'] else '-'} "
              f"{f['detail']}")
    return 0


def _running_web(data_dir: Path) -> str:
    """The web application's URL of the sandbox running on ``data_dir`` ("" when none runs)."""
    from mycarenet_ic.sandbox import read_running

    try:
        return read_running(data_dir).get("web", "")
    except (OSError, ValueError, KeyError):
        return ""


def _inspector(args: argparse.Namespace, what: str) -> Any:
    """The data directory's inspector store, for its operator (the admin token, as ``audit show``); reading
    raw traffic is audited (``Inspect…``, who and what)."""
    from mycarenet_ic.inspector.store import FILE_NAME, InspectorStore
    from mycarenet_ic.persistence.audit import AuditEntry, SqlAuditLog
    from mycarenet_ic.persistence.db import make_engine, migrate
    from mycarenet_ic.persistence.pseudonym import Pseudonymiser

    settings = _settings(args)
    operator = _operator(args, settings.data_dir)
    if not (settings.data_dir / FILE_NAME).is_file():
        raise SystemExit(_error(f"no exchanges recorded in {settings.data_dir}: the sandbox records them "
                                "(unless --no-inspector), a WSGI deployment with MYCARENET_INSPECTOR=1"))
    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine)
        SqlAuditLog(engine, Pseudonymiser.from_data_dir(settings.data_dir)).append(
            AuditEntry("cli", f"Inspect{args.inspect_command.capitalize()}", caller=operator, detail=what))
    finally:
        engine.dispose()
    return InspectorStore.of(settings)


def _since(raw: str) -> Any:
    """A time: ISO 8601 (a date, or a date and time, UTC unless it says), or an age: 90s, 10m, 2h, 1d."""
    from mycarenet_ic.inspector.views import parse_time

    try:
        return parse_time(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _filters(args: argparse.Namespace) -> Any:
    from mycarenet_ic.inspector.store import Filters

    return Filters(service=args.service, caller=args.caller, outcome=args.outcome, since=args.since)


def cmd_inspect_list(args: argparse.Namespace) -> int:
    from mycarenet_ic.inspector import views

    store = _inspector(args, f"limit={args.limit}")
    try:
        found = store.list(_filters(args), limit=args.limit)
    finally:
        store.close()
    if args.json:
        print(printable_json([views.summary(e) for e in found]))
    for exchange in [] if args.json else found:
        print(printable(views.line(exchange)))
    return 0


def _exchange(store: Any, exchange_id: int) -> Any:
    found = store.get(exchange_id)
    if found is None:
        store.close()
        raise SystemExit(_error(f"no exchange {exchange_id} (the inspector keeps the newest "
                                f"{store.max_exchanges}, none older than {store.max_age})"))
    return found


def cmd_inspect_show(args: argparse.Namespace) -> int:
    from mycarenet_ic.config import owner_only_dir, write_owner_only
    from mycarenet_ic.inspector import views

    store = _inspector(args, f"id={args.id}")
    try:
        exchange = _exchange(store, args.id)
    finally:
        store.close()
    if args.out is None:
        for text in views.full_text(exchange).splitlines():
            print(printable(text))
        return 0
    out = Path(args.out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise SystemExit(_error(f"--out {out}: give a directory (not a link, not a file)"))
    if not out.exists():  # a new one only its owner enters; an existing one keeps its mode and its files
        owner_only_dir(out)
    # the messages hold NISS: each file 0600
    for name, data in views.files(exchange).items():
        print(printable(str(write_owner_only(out / f"{args.id}-{name}", data))))
    return 0


def cmd_inspect_diff(args: argparse.Namespace) -> int:
    from mycarenet_ic.inspector import views

    store = _inspector(args, f"ids={args.first},{args.second}")
    try:
        first, second = _exchange(store, args.first), _exchange(store, args.second)
    finally:
        store.close()
    text = views.diff(first, second)
    for line in text.splitlines():
        print(printable(line))
    return 1 if text else 0  # as diff(1): 0 alike, 1 different


def cmd_inspect_tail(args: argparse.Namespace) -> int:
    """The last exchanges, then (``-f``) each new one as it is stored, until Ctrl-C or SIGTERM (or ``--count``)."""
    from mycarenet_ic.inspector import views

    store = _inspector(args, f"follow={args.follow}")
    done = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: done.set()) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        shown = list(reversed(store.list(_filters(args), limit=args.lines))) if args.lines else []
        last = shown[-1].id if shown else store.newest_id()
        for exchange in shown:
            print(printable(views.line(exchange)), flush=True)
        followed = 0
        while args.follow and not done.is_set() and (args.count is None or followed < args.count):
            new = store.list(_filters(args), limit=max(1, (args.count or 500) - followed), after=last)
            for exchange in new:
                print(printable(views.line(exchange)), flush=True)
                last, followed = exchange.id, followed + 1
            if not new:
                last = max(last, store.newest_id())  # filtered out or pruned: do not read them again
                done.wait(args.interval)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        store.close()
    return 0


def _admin_call(data_dir: Path, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
    from mycarenet_ic.sandbox import read_running
    from mycarenet_ic.stubs.admin import admin_token

    try:
        base = read_running(data_dir)["scenario-admin"].rstrip("/")
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise CliError(f"{exc}: start it (mycarenet-ic sandbox), or give the running sandbox's --data-dir") from None
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,  # noqa: S310 - loopback URL we wrote
                                 headers={"Authorization": f"Bearer {admin_token(data_dir)}",
                                          "Content-Type": "application/json"})
    try:
        from mycarenet_ic.security.pki import Pki
        from mycarenet_ic.server import client_tls

        context = client_tls(Pki(data_dir).ca_file) if base.startswith("https:") else None
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:  # noqa: S310
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read())
            message = answer.get("error", exc.reason) if isinstance(answer, dict) else exc.reason
        except (ValueError, OSError):
            message = f"{exc.code} {exc.reason}"
        raise SystemExit(_error(message)) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CliError(f"the sandbox's admin endpoint {base} did not answer ({exc}): is the sandbox still running? "
                       "start it again") from None


def cmd_scenario(args: argparse.Namespace) -> int:
    data_dir = _settings(args).data_dir
    if args.action == "show":
        print(printable_json(_admin_call(data_dir, "GET", "/scenario")))
        return 0
    change: dict[str, Any] = {"action": args.action}
    for key in ("patient", "hcparty", "type", "start", "end", "ssin", "date", "old", "new"):
        value = getattr(args, key, None)
        if value is not None:
            change[key] = value
    print(printable_json(_admin_call(data_dir, "POST", "/scenario/changes", change)))
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from mycarenet_ic.app import prepare

    settings = _settings(args)
    prepare(settings)
    print(printable(f"prepared {settings.data_dir}: sandbox PKI, database schema "
                    f"({settings.effective_database_url.split('@')[-1]}), keys"))
    return 0


def _platform(args: argparse.Namespace) -> Any:
    from mycarenet_ic.app import Platform

    return Platform.prepared(_settings(args))


def cmd_mutations_sync(args: argparse.Namespace) -> int:
    from mycarenet_ic.sandbox import read_running

    platform = _platform(args)
    try:
        urls = read_running(platform.settings.data_dir)
        report = platform.mutation_sync(platform.gateways(urls)).run()
    except FileNotFoundError as exc:
        print(_error(exc), file=sys.stderr)
        return 2
    finally:
        platform.close()
    print(f"mutations applied: {report.applied} (NISS changes {report.ssin_changes}, deaths {report.deaths}); "
          f"inclusions changed: {report.inclusions_touched}; feed position: {report.position}")
    return 0


class ProgressBar:
    """A one-line progress bar on stderr, redrawn at most every 1 % (a line per 10 % off a terminal)."""

    def __init__(self, label: str, stream: Any = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        pct = 100 if total <= 0 else done * 100 // total
        step = 1 if self.tty else 10
        if pct // step == self._shown // step and done != total:
            return
        self._shown = pct
        bar = "#" * (pct // 4) + "." * (25 - pct // 4)
        end = "\n" if done == total or not self.tty else ""
        start = "\r" if self.tty else ""
        print(f"{start}{self.label} [{bar}] {pct:3d}% {done}/{total}", end=end, file=self.stream, flush=True)


def cmd_export_insurers(args: argparse.Namespace) -> int:
    import datetime as dt

    from mycarenet_ic.persistence.insurer_export import ExportConflict, export_insurers

    since = dt.date.fromisoformat(args.since) if args.since else None
    platform = _platform(args)
    try:
        report = export_insurers(platform.inclusion_events, platform.feed_cursors, platform.affiliations,
                                 Path(args.out), since, ProgressBar("export"), caller="platform:export")
    except ExportConflict as exc:
        print(_error(exc), file=sys.stderr)
        return 1
    finally:
        platform.close()
    if not report.events:
        print("nothing new to export")
        return 0
    for insurer, path in sorted(report.files.items()):
        print(printable(f"insurer {insurer}: {report.per_insurer[insurer]} event(s) -> {path}"))
    print(f"exported {report.events} event(s), {report.first_seq}..{report.last_seq}")
    return 0


def cmd_export_research(args: argparse.Namespace) -> int:
    import datetime as dt

    from mycarenet_ic.persistence.research import SqlResearchJournal, consenting_patients
    from mycarenet_ic.sandbox import read_running
    from mycarenet_ic.services.research import InsurerCoding, ResearchExport, check_project, check_purpose

    try:
        purpose = check_purpose(args.purpose)
        project = check_project(args.project) if args.project else None
    except ValueError as exc:
        print(_error(exc), file=sys.stderr)
        return 2
    as_of = dt.date.fromisoformat(args.as_of) if args.as_of else dt.date.today()
    settings = _settings(args)
    operator = _operator(args, settings.data_dir)  # the journal names who ran it
    platform = _platform(args)
    try:
        try:
            urls = read_running(platform.settings.data_dir)
        except FileNotFoundError as exc:
            print(_error(f"{exc}: the second coding needs the coding service (start the sandbox)"), file=sys.stderr)
            return 2

        def insurer_of(ssin: str, day: dt.date) -> str | None:
            aff = platform.affiliations.affiliation(ssin, day)
            return aff.insurer if aff else None

        export = ResearchExport(lambda: consenting_patients(platform.engine, platform.sealer), insurer_of,
                                platform.affiliations.postal_code, InsurerCoding.from_data_dir(settings.data_dir),
                                platform.coding(urls), SqlResearchJournal(platform.engine, platform.audit))
        report = export.run(Path(args.out), purpose=purpose, as_of=as_of, caller=operator, project=project,
                            progress=ProgressBar("research export"))
    finally:
        platform.close()
    print(printable(f"extraction {report.extraction} (project {report.project}): {report.patients} patient(s), "
                    f"{report.rows} row(s) -> {report.file}"))
    return 0


def cmd_purge_research(args: argparse.Namespace) -> int:
    import datetime as dt

    from mycarenet_ic.persistence.research import SqlResearchJournal
    from mycarenet_ic.services.research import purge_research

    on = dt.date.fromisoformat(args.as_of) if args.as_of else dt.date.today()
    operator = _operator(args, _settings(args).data_dir)
    platform = _platform(args)
    try:
        due = purge_research(SqlResearchJournal(platform.engine, platform.audit), on, caller=operator)
    finally:
        platform.close()
    print(f"destroyed {len(due)} research sample(s) whose 30 years were over on {on}")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    import datetime as dt

    as_of = dt.date.fromisoformat(args.as_of) if args.as_of else dt.date.today()
    try:
        cutoff = as_of.replace(year=as_of.year - 10)
    except ValueError:  # 29 February
        cutoff = as_of.replace(year=as_of.year - 10, day=28)
    platform = _platform(args)
    try:
        deleted = platform.inclusion_events.purge(cutoff, f"retention of 10 years as of {as_of}",
                                                  caller="platform:purge")
    finally:
        platform.close()
    print(f"purged {deleted} inclusion(s) that ended before {cutoff}")
    return 0


def _print_statistics(report: Any) -> None:
    from mycarenet_ic.services.statistics import DIMENSIONS, SMALL

    scope = f"project {report.project}" if report.project else "every project"
    print(printable(f"Integrated Care statistics as of {report.as_of}, {scope}: patients in effect per project; "
                    f"cells under {SMALL[1:]} shown as {SMALL!r}; no patient is listed"))
    if not report.projects:
        print("no inclusion in effect")
    widths = (11, 7, 8, 7, 8)
    header = "  " + " ".join(h.ljust(w) for h, w in zip((*DIMENSIONS, "patients"), widths, strict=True))
    for p in report.projects:
        print(printable(f"PSI {p.project}: {p.total} patient(s)"))
        print(header.rstrip())
        for key, n in p.cells:
            print(printable("  " + " ".join(str(v).ljust(w) for v, w in zip((*key, n), widths, strict=True)).rstrip()))


def cmd_statistics(args: argparse.Namespace) -> int:
    import datetime as dt

    from mycarenet_ic.domain.identifiers import parse_nihii
    from mycarenet_ic.sandbox import read_running
    from mycarenet_ic.services.statistics import Statistics

    as_of = dt.date.fromisoformat(args.as_of) if args.as_of else dt.date.today()
    try:
        project = parse_nihii(args.project, person=False).value if args.project else None
    except InvalidIdentifier as exc:
        print(_error(f"--project: {exc.reason}"), file=sys.stderr)
        return 2
    platform = _platform(args)
    try:
        store = platform.inclusions
        try:
            urls = read_running(platform.settings.data_dir)
        except FileNotFoundError:
            print("note: no running sandbox: stopped projects were not checked in CoBrHa", file=sys.stderr)
        else:
            # A stopped PSI's inclusions end at its end date: close them before they are counted.
            try:
                platform.integrated_care(platform.gateways(urls)).close_stopped_projects(store.projects())
            except Exception as exc:  # noqa: BLE001 - counting still works; say why the check was skipped
                print(_error(f"stopped projects were not checked in CoBrHa: {exc}").replace("error:", "note:", 1),
                      file=sys.stderr)

        def insurer_of(ssin: str, day: dt.date) -> str | None:
            aff = platform.affiliations.affiliation(ssin, day)
            return aff.insurer if aff else None

        stats = Statistics(store.effective_on, insurer_of)
        report = stats.run(as_of, project)
        platform.inclusion_events.record("Statistics", stats.audit_detail(report), caller="platform:statistics")
    finally:
        platform.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
    else:
        _print_statistics(report)
    return 0


def _print_premium(report: Any) -> None:
    rules = report.rules
    print(printable(f"Home-nurse premium {rules.year} (seed 002): patient contacts {rules.period_start}.."
                    f"{rules.period_end} on billing accepted by {rules.billing_accepted_by}, "
                    f"{rules.contacts_per_fte} contacts = 1 FTE, salaried FTE deducted, at most {rules.max_gross} "
                    f"EUR gross; bank accounts registered by {report.account_deadline}"))
    widths = (11, 8, 8, 7, 8, 7, 13, 10, 10)
    header = ("NIHII", "patients", "contacts", "FTE", "salaried", "due", "independent", "account", "gross EUR")
    print(" ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for row in report.rows():
        cells = [row[k] for k in ("nihii", "patients", "patient_contacts", "theoretical_fte", "salaried_fte",
                                  "fte_due", "independent")] + [row["account_registered"] or "-"]
        line = " ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + " " + row["gross_eur"].rjust(9)
        print(printable(line + (f"  refused: {row['reason']}" if row["reason"] else "")))
    print(printable(f"{len(report.providers)} provider(s), {len(report.paid)} paid, {report.total} EUR gross"))


def cmd_premium_nurses(args: argparse.Namespace) -> int:
    import csv

    from mycarenet_ic.persistence.home_nursing import NoHomeNursingData, ScenarioHomeNursing
    from mycarenet_ic.services.nurse_premium import CSV_COLUMNS, NursePremium, PremiumError
    from mycarenet_ic.stubs.scenario import DEMO_FILE

    platform = _platform(args)
    try:
        data = ScenarioHomeNursing(platform.settings.data_dir / "scenario.json", default=DEMO_FILE)
        report = NursePremium(data, platform.audit).run(args.year, args.nurse)
    except InvalidIdentifier as exc:
        print(_error(f"--nurse: {exc.reason}"), file=sys.stderr)
        return 2
    except PremiumError as exc:
        print(_error(exc), file=sys.stderr)
        return 2
    except NoHomeNursingData as exc:
        print(_error(exc.args[0]), file=sys.stderr)
        return 1
    finally:
        platform.close()
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(report.rows())
        print(printable(f"{len(report.providers)} provider(s) -> {args.csv}"))
    else:
        _print_premium(report)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from mycarenet_ic.cli_support import Parser, add_global_options

    parser: argparse.ArgumentParser = Parser(prog="mycarenet-ic", description="A local MyCareNet in a box.")
    common = argparse.ArgumentParser(add_help=False)
    add_global_options(parser, common)  # --data-dir, --verbose, --log-level: before the subcommand or after
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", parents=[common],
                       help="create the data directory, its PKI and keys, and migrate the database (kept if there)")
    p.set_defaults(func=cmd_prepare)

    certs = sub.add_parser("certs", help="sandbox PKI").add_subparsers(dest="certs_command", required=True)
    p = certs.add_parser("init", parents=[common], help="create the sandbox CA and the service certificates")
    p.add_argument("--force", action="store_true", help="replace an existing CA (invalidates issued certificates)")
    p.set_defaults(func=cmd_certs_init)
    p = certs.add_parser("issue", parents=[common], help="issue a test identity certificate for a caller")
    p.add_argument("--ssin", help="the holder's NISS/SSIN (persons)")
    p.add_argument("--nihii", help="the holder's NIHII (providers, organisations)")
    p.add_argument("--quality", required=True, choices=[q.value for q in Quality])
    p.add_argument("--out", required=True, help="directory for KEY.pem, CERT.pem and .p12")
    p.add_argument("--name", help="file name stem (default: QUALITY-ID)")
    p.add_argument("--days", type=int, default=730)
    p.add_argument("--identity", action="store_true",
                   help="(the default) an identity certificate as eHealth issues it: no quality in it, the STS "
                   "certifies that")
    p.add_argument("--hok", action="store_true",
                   help="also a separate holder-of-key certificate for the same holder (STEM-hok.*), as production")
    p.add_argument("--etk", action="store_true",
                   help="also an encryption key pair (STEM-etk.*) and its ETK (STEM.etk), registered in the sandbox's "
                        "ETK depot: for sealed (ETEE) requests and answers")
    p.add_argument("--with-quality", action="store_true",
                   help="the sandbox's simple X.509 mode instead: a certificate that says the quality itself "
                   "(OU=QUALITY=...), signing in a BinarySecurityToken, no STS")
    p.add_argument("--p12-password", default=DEFAULT_P12_PASSWORD,
                   help=f"password of the PKCS#12 keystore (default: {DEFAULT_P12_PASSWORD})")
    p.set_defaults(func=cmd_certs_issue)

    from mycarenet_ic.security.sts_attributes import ROLES

    sts = sub.add_parser("sts", help="the sandbox's eHealth STS").add_subparsers(dest="sts_command", required=True)
    p = sts.add_parser("token", parents=[common], help="get a SAML holder-of-key token and print its assertion")
    p.add_argument("--cert", required=True, help="the identity certificate (PEM) that signs the request")
    p.add_argument("--key", required=True, help="its private key (PEM)")
    p.add_argument("--hok-cert", help="a separate holder-of-key certificate (PEM); default: the identity's")
    p.add_argument("--hok-key", help="its private key (PEM)")
    p.add_argument("--as", dest="quality", required=True, choices=[q.value for q in ROLES],
                   help="the quality to be certified in")
    p.add_argument("--url", help="the STS address (default: the running sandbox's, from --data-dir)")
    p.add_argument("--raw", action="store_true",
                   help="print the assertion as received (pretty printing changes whitespace the signature covers)")
    p.set_defaults(func=cmd_sts_token)

    idp = sub.add_parser("idp", help="the sandbox's eHealth IdP (the web application's sign-in)").add_subparsers(
        dest="idp_command", required=True)
    p = idp.add_parser("enrol", parents=[common],
                       help="give a person a TOTP second factor: prints the secret, its otpauth:// URI and a QR code")
    p.add_argument("--ssin", required=True, help="the person's NISS")
    p.add_argument("--no-qr", action="store_true", help="leave the terminal QR code out")
    p.set_defaults(func=cmd_idp_enrol)

    p = sub.add_parser("sandbox", parents=[common], help="start every service and stub with the demo scenario")
    p.add_argument("--host", help=f"the address every port listens on (default: {Settings.host})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"the one port of every service, each at its own path (default: {DEFAULT_PORT}; "
                        "0 picks a free port)")
    p.add_argument("--reset-scenario", action="store_true", help="start again from the demo scenario")
    p.add_argument("--plain-http", action="store_true",
                   help="serve plain HTTP instead of HTTPS (local debugging only; also MYCARENET_TLS=0)")
    p.add_argument("--tokens", type=_token_kinds, metavar="KINDS",
                   help="the WS-Security tokens the business services take: saml-hok (STS tokens, as production; "
                        f"the default: {Settings.accepted_tokens}), x509 (the simple mode) or x509,saml-hok "
                        "(also MYCARENET_TOKENS)")
    p.add_argument("--no-inspector", dest="inspector", action="store_false", default=None,
                   help="record no exchanges (the inspector is on by default in the sandbox; MYCARENET_INSPECTOR=0)")
    p.set_defaults(func=cmd_sandbox)
    from mycarenet_ic.serve import register as register_serve

    register_serve(sub, common)

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_command", required=True)
    p = audit.add_parser("verify", parents=[common], help="check the hash chain; name the first broken row")
    p.set_defaults(func=cmd_audit_verify)
    p = audit.add_parser("show", parents=[common], help="the newest audit rows")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--outcome", choices=["OK", "DENIED", "ERROR"])
    from mycarenet_ic.inspector.reason import positive

    p.add_argument("--last", type=positive, nargs="?", const=1, metavar="N",
                   help="the last refused requests (1 unless N) with their true reason: what the client's "
                        "generic fault does not say (the sandbox's X-Sandbox-Reason header points here)")
    p.add_argument("--token", help="the data directory's admin token (default: read secrets/admin.token, "
                                    "owner only; or MYCARENET_ADMIN_TOKEN)")
    p.set_defaults(func=cmd_audit_show)

    inspect = sub.add_parser("inspect", help="the inspector: every exchange recorded, with the true reason of a "
                             "refusal (a sandbox tool: raw traffic)").add_subparsers(dest="inspect_command",
                                                                                     required=True)
    token = argparse.ArgumentParser(add_help=False, parents=[common])
    token.add_argument("--token", help="the data directory's admin token (default: read secrets/admin.token, "
                                        "owner only; or MYCARENET_ADMIN_TOKEN)")
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--service", help="one service (memberdata, integrated-care, sts, …)")
    filters.add_argument("--caller", help="one caller, as the audit names it (quality:NIHII, quality:ssin#…)")
    filters.add_argument("--outcome", choices=["OK", "DENIED", "ERROR"])
    filters.add_argument("--since", type=_since, help="from this time (ISO 8601, UTC unless it says) or age (10m, 2h)")
    p = inspect.add_parser("list", parents=[token, filters], help="the newest exchanges, one line each")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="as JSON (the fields, without the messages)")
    p.set_defaults(func=cmd_inspect_list)
    p = inspect.add_parser("show", parents=[token], help="one exchange: request, answer, true reason, decoded blobs")
    p.add_argument("id", type=int)
    p.add_argument("--out", help="write it as files into this directory (request.xml and answer.xml as sent)")
    p.set_defaults(func=cmd_inspect_show)
    p = inspect.add_parser("diff", parents=[token], help="what differs between two exchanges (exit 1 if anything)")
    p.add_argument("first", type=int)
    p.add_argument("second", type=int)
    p.set_defaults(func=cmd_inspect_diff)
    p = inspect.add_parser("tail", parents=[token, filters], help="the last exchanges; -f: then each new one")
    p.add_argument("-f", "--follow", action="store_true", help="follow new exchanges until Ctrl-C or SIGTERM")
    p.add_argument("-n", "--lines", type=int, default=10, help="how many of the last to show first (default 10)")
    p.add_argument("--count", type=int, help="with -f: stop after this many new exchanges")
    p.add_argument("--interval", type=float, default=0.5, help="with -f: seconds between looks (default 0.5)")
    p.set_defaults(func=cmd_inspect_tail)

    from mycarenet_ic.conformance import cli as conformance

    conformance.register(sub, common)
    from mycarenet_ic.samples.cli import register as register_samples

    register_samples(sub, common)  # samples write | sign

    muts = sub.add_parser("mutations", help="the National Register's mutation feed").add_subparsers(
        dest="mutations_command", required=True)
    p = muts.add_parser("sync", parents=[common], help="apply new NISS changes and deaths to the inclusions now")
    p.set_defaults(func=cmd_mutations_sync)

    export = sub.add_parser("export", help="periodic exports").add_subparsers(dest="export_command", required=True)
    p = export.add_parser("insurers", parents=[common],
                          help="write, per insurer, the declarations and modifications not yet exported")
    p.add_argument("--out", required=True, help="directory for the XML files")
    p.add_argument("--since", type=iso_date,
                   help="re-export everything from this date (YYYY-MM-DD); the cursor is not moved")
    p.set_defaults(func=cmd_export_insurers)
    p = export.add_parser("research", parents=[common],
                          help="the consenting patients' inclusions for research: double-coded, wide classes, "
                          "journaled (seeds 003, 004)")
    p.add_argument("--purpose", required=True, help="why this extraction is made (written to the access journal)")
    p.add_argument("--out", required=True, help="directory for the CSV file")
    p.add_argument("--project", help="the research project the codes are for (default: this extraction alone)")
    p.add_argument("--as-of", type=iso_date, help="the day the data are taken on (default: today)")
    p.add_argument("--token", help="the data directory's admin token (default: $MYCARENET_ADMIN_TOKEN)")
    p.set_defaults(func=cmd_export_research)
    p = export.add_parser("research-purge", parents=[common],
                          help="destroy the research samples whose 30 years are over (seed 003 art. 4)")
    p.add_argument("--as-of", type=iso_date, help="the day the retention is counted on (default: today)")
    p.add_argument("--token", help="the data directory's admin token (default: $MYCARENET_ADMIN_TOKEN)")
    p.set_defaults(func=cmd_purge_research)

    p = sub.add_parser("purge", parents=[common], help="delete inclusions that ended more than 10 years ago")
    p.add_argument("--as-of", type=iso_date, help="the date the 10 years are counted back from (default: today)")
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("statistics", parents=[common],
                       help="Integrated Care patients per project, status, consent, age band and insurer "
                       "(aggregates only, small cells suppressed)")
    p.add_argument("--as-of", type=iso_date, help="count the inclusions in effect on this date (default: today)")
    p.add_argument("--project", help="one project's NIHII (default: every project)")
    p.add_argument("--json", action="store_true", help="the counts as JSON (the export)")
    p.set_defaults(func=cmd_statistics)

    premium = sub.add_parser("premium", help="one-off premiums").add_subparsers(dest="premium_command",
                                                                             required=True)
    p = premium.add_parser("nurses", parents=[common],
                           help="the home-nurse incentive premium (seed 002) per provider, from the billed home "
                           "nursing of the scenario")
    p.add_argument("--year", type=int, default=2020, help="the premium's reference year (seed 002: 2020, the default)")
    p.add_argument("--nurse", metavar="NIHII", help="one provider's NIHII (default: every provider)")
    p.add_argument("--csv", metavar="FILE", help="write the report as CSV to FILE instead")
    p.set_defaults(func=cmd_premium_nurses)

    scen = sub.add_parser("scenario", help="change the running sandbox's scenario").add_subparsers(
        dest="action", required=True)
    p = scen.add_parser("show", parents=[common])
    p = scen.add_parser("add-link", parents=[common], help="add a therapeutic link")
    p.add_argument("--patient", required=True)
    p.add_argument("--hcparty", required=True, help="NIHII of the provider or pharmacy")
    p.add_argument("--type", required=True, help="persphysician, persnurse, …, orgpharmacy")
    p.add_argument("--start", required=True)
    p.add_argument("--end")
    p = scen.add_parser("remove-links", parents=[common], help="remove the links between a patient and a provider")
    p.add_argument("--patient", required=True)
    p.add_argument("--hcparty", required=True)
    p = scen.add_parser("death", parents=[common], help="record a death (and its mutation)")
    p.add_argument("--ssin", required=True)
    p.add_argument("--date", required=True)
    p = scen.add_parser("replace-ssin", parents=[common], help="replace a NISS by a new one (and its mutation)")
    p.add_argument("--old", required=True)
    p.add_argument("--new", required=True)
    p.add_argument("--date", required=True)
    for action in ("show", "add-link", "remove-links", "death", "replace-ssin"):
        scen.choices[action].set_defaults(func=cmd_scenario)
    from mycarenet_ic.fault_cli import register as register_faults

    register_faults(scen, common)  # scenario inject | faults | clear-faults
    return parser


def main(argv: list[str] | None = None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from mycarenet_ic.cli_support import start_command

    args = build_parser().parse_args(argv)
    try:
        start_command(args)  # logging; the data directory checked (and named); DATABASE_URL checked
        code = int(args.func(args))
        sys.stdout.flush()  # here, where a closed pipe is handled, not at exit
        return code
    except CliError as exc:  # something the person can fix: what and how, in one line
        print(_error(exc), file=sys.stderr)
        return 2
    except BrokenPipeError:  # ``… | head``: the reader has what it wanted
        _silence_stdout()
        return 1
    except SQLAlchemyError as exc:
        print(_error(str(exc).split("\n(Background on this error")[0]), file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:  # a file or database that cannot be opened, a date that is none
        print(_error(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
