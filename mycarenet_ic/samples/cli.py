"""``mycarenet-ic samples write|sign``: the samples written from a sandbox on the demo scenario, and one of them
filled in and signed, ready to post. Hooked into ``mycarenet_ic.cli`` by :func:`register`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("samples", help="sample requests and answers per service and scenario (samples/)"
                           ).add_subparsers(dest="samples_command", required=True)
    p = group.add_parser("write", parents=[common], help="play every scenario against a sandbox on the demo "
                         "scenario and write its request, blobs and answer, the index, the SoapUI project and "
                         "the Postman collection under DIR")
    p.add_argument("dir", metavar="DIR", help="where (the checkout's samples/; its service directories are "
                   "replaced, clients/ is left alone)")
    p.add_argument("--target", action="append", default=None, metavar="URL",
                   help="as conformance run: NAME=URL per service, a base URL, or 'running' (the default: the "
                   "sandbox running on --data-dir; start it with --reset-scenario)")
    p.add_argument("--tokens", dest="token_kind", choices=("sts", "x509"), default="sts",
                   help="how the demo callers sign (default sts: STS holder-of-key tokens)")
    p.set_defaults(func=cmd_write)

    p = group.add_parser("sign", parents=[common], help="a sample request with its placeholders filled in "
                         "and signed (an X.509 certificate, or --sts: a token from the running sandbox's STS)")
    p.add_argument("file", metavar="FILE", help="a sample's request.xml")
    p.add_argument("--cert", required=True, help="the signer's certificate (PEM; mycarenet-ic certs issue)")
    p.add_argument("--key", required=True, help="its private key (PEM)")
    p.add_argument("--sts", metavar="QUALITY", help="ask the running sandbox's STS for a token of QUALITY (the "
                   "certificate is its holder-of-key) instead of signing with the certificate alone (simple mode)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a placeholder's value, e.g. inclusion1=<an InclusionId from a consultation>")
    p.add_argument("--out", metavar="FILE", help="write there (default: standard output)")
    p.set_defaults(func=cmd_sign)


def cmd_write(args: argparse.Namespace) -> int:
    from mycarenet_ic.cli import _error, _settings
    from mycarenet_ic.conformance.catalogue import SCENARIOS, Scenario
    from mycarenet_ic.conformance.runner import Credentials, RunError, Runner, target_urls
    from mycarenet_ic.samples.generate import SampleError, play, write
    from mycarenet_ic.sandbox import read_running

    settings = _settings(args)

    def progress(done: int, total: int, scenario: Scenario) -> None:
        print(f"[{done:>3}/{total}] {scenario.id}", file=sys.stderr, flush=True)

    try:
        urls = target_urls(args.target or ["running"], lambda: read_running(settings.data_dir))
        runner = Runner(urls, Credentials(settings.data_dir, args.token_kind, urls.get("sts")))
        written = write(Path(args.dir), play(runner, SCENARIOS, progress))
    except (RunError, SampleError, FileNotFoundError) as exc:
        print(_error(exc), file=sys.stderr)
        return 2
    print(f"{len(written)} files under {args.dir}", file=sys.stderr)
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from cryptography import x509

    from mycarenet_ic.cli import _error, _settings
    from mycarenet_ic.clients.raw import envelope, to_bytes
    from mycarenet_ic.clients.sts import StsClient, TokenSource
    from mycarenet_ic.domain.qualities import Quality
    from mycarenet_ic.errors import MycarenetError
    from mycarenet_ic.samples.normalise import fill, parse
    from mycarenet_ic.sandbox import read_running
    from mycarenet_ic.security.pki import KeyPair
    from mycarenet_ic.security.wssec import Signer, TrustStore

    try:
        given = dict(item.split("=", 1) for item in args.set)
        keypair = KeyPair(Path(args.key).read_bytes(), Path(args.cert).read_bytes())
        filled = parse(fill(Path(args.file).read_bytes(), given))
        body = filled.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
        if body is None or len(body) != 1:
            raise ValueError(f"{args.file}: no SOAP Body with one element (a sample's request.xml?)")
        signer = Signer(keypair)
        if args.sts:
            data = _settings(args).data_dir
            ca = data / "pki" / "ca.cert.pem"
            sts = StsClient(read_running(data)["sts"], keypair, TrustStore.from_pem(ca.read_bytes()),
                            x509.load_pem_x509_certificate((data / "pki" / "sts.cert.pem").read_bytes()),
                            ca_file=ca)
            tokens = TokenSource(sts, Quality(args.sts))
            signer = Signer(keypair, token=lambda: tokens.token().assertion)
        from lxml import etree

        signed = to_bytes(signer.sign(envelope(etree.tostring(body[0], encoding="unicode"))))
    except (OSError, ValueError, MycarenetError) as exc:  # a refused STS token too
        print(_error(exc), file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_bytes(signed)
    else:
        sys.stdout.buffer.write(signed)
    return 0
