"""What every sample client does first, as the README's "Authenticating as in production" says: find the
running sandbox (``$MYCARENET_DATA_DIR``, else your default data directory), trust its CA, ask its STS for a
holder-of-key token for the certificate that ``certs issue`` wrote into ``./me``, and make a zeep client that
signs every request with it (Body and Timestamp, exclusive c14n, RSA-SHA256) and checks every answer's
signature. Run the clients from the directory that holds ``me/``:

    mycarenet-ic certs issue --ssin 74030902123 --quality doctor --out ./me
    python samples/clients/memberdata.py
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path
from typing import Any

import requests
import zeep
from cryptography import x509
from lxml import etree
from zeep.transports import Transport

from mycarenet_ic.clients.sts import StsClient, TokenSource
from mycarenet_ic.datadir import default_data_dir
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.sandbox import read_running
from mycarenet_ic.security.pki import read_keypair
from mycarenet_ic.security.wssec import MemoryReplayCache, Signer, TrustStore, Verifier

DATA = Path(os.environ.get("MYCARENET_DATA_DIR") or default_data_dir())  # the running sandbox's data directory
ME = Path("me"), "doctor-74030902123"                                      # certs issue … --out ./me


def connect(service: str) -> tuple[zeep.Client, Any]:
    """A signing zeep client of ``service`` and the identity the STS certified (quality, NIHII, NISS)."""
    urls = read_running(DATA)                          # the addresses the sandbox printed (sandbox.json)
    ca = DATA / "pki" / "ca.cert.pem"                  # the trust anchor: TLS and signatures
    trust = TrustStore.from_pem(ca.read_bytes())
    identity = read_keypair(*ME)                       # its own holder-of-key (certs issue --hok: a second one)
    sts = StsClient(urls["sts"], identity, trust, x509.load_pem_x509_certificate(
        (DATA / "pki" / "sts.cert.pem").read_bytes()), ca_file=ca)
    tokens = TokenSource(sts, Quality.DOCTOR)          # asked once, renewed when half its validity is gone
    signer = Signer(identity, token=lambda: tokens.token().assertion, verifier=Verifier(trust, MemoryReplayCache()))
    session = requests.Session()
    session.verify = str(ca)
    client = zeep.Client(urls[service] + "?wsdl", transport=Transport(session=session), wsse=signer)
    return client, tokens.token().identity


def header() -> dict[str, Any]:
    """A request's ``Id`` (new for each request) and ``IssueInstant``."""
    return {"Id": f"_{uuid.uuid4().hex}", "IssueInstant": dt.datetime.now(dt.UTC).replace(microsecond=0)}


def commons_input(me: Any) -> dict[str, Any]:
    """The commons ``CommonInput`` (MemberData v3, Tarification v2) of a care provider."""
    return {"Request": {"IsTest": True}, "InputReference": f"ref-{uuid.uuid4().hex[:8]}",
            "Origin": {"Package": {"Name": {"_value_1": "my-software"},
                                   "License": {"Username": "me", "Password": "secret"}},
                       "CareProvider": {"Nihii": {"Quality": me.quality.value, "Value": {"_value_1": me.nihii}},
                                        "PhysicalPerson": {"Ssin": {"_value_1": me.ssin}}}}}


def tariff_amounts(detail: Any) -> dict[str, dict[str, str]]:
    """Per priced code, its amounts (``fee``, ``patientfee``, …) from a tariff answer's KMEHR."""
    kmehr = etree.fromstring(detail._value_1)
    priced: dict[str, dict[str, str]] = {}
    for transaction in kmehr.iter("{*}transaction"):
        items = {item.findtext("{*}cd"): item for item in transaction.findall("{*}item")}
        code = items["claim"].findtext("{*}content/{*}cd")
        priced[code] = {name: item.findtext("{*}cost/{*}decimal") for name, item in items.items()
                        if item.find("{*}cost") is not None}
    return priced
