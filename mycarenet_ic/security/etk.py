"""The sandbox's ETK registry: which party has which encryption token, kept in the data directory's PKI.

The eHealth ETK depot answers ``GetEtk`` by identifier: ``Type`` (``SSIN``, ``NIHII``, ``CBE``, an
organisation's ``NIHII-…``), ``Value`` and an optional ``ApplicationID`` (one holder may have one ETK per
application). Facts: freehealth-connector ``be.fgov.ehealth.etkdepot._1_0.protocol`` (``IdentifierType``:
``Type``, ``Value``, ``ApplicationID``) and its MemberData configuration ``memberdata.keydepot.*``: the
platform's ETK is CBE ``0820563481``, application ``MYCARENET`` — what a MemberData request is sealed for.

Who is in it (``<data-dir>/pki/etk/registry.json``, the tokens and certificates beside it, the keys the
sandbox holds 0600):

- the MyCareNet platform (CBE 0820563481, ``MYCARENET``), whose key the platform holds to open requests;
- each insurer (union 100, 200, … 900) under a CBE of the sandbox's own (:func:`insurer_cbe`: the unions'
  real enterprise numbers are not used), ``MYCARENET`` too, the key held by the platform that plays them;
- every holder for whom ``mycarenet-ic certs issue … --etk`` made an encryption key pair: by ``SSIN`` for a
  person (and ``NIHII`` when given), by the organisation's type (``NIHII-PHARMACY``, …) and NIHII; the key
  goes to the holder only.

Each ETK is signed by the depot's own certificate (``pki/etk-depot.cert.pem``) and carries the encryption
certificate and the sandbox CA. The registry is read anew at each look-up, so an ETK issued while the
sandbox runs is found at once.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mycarenet_ic.config import OWNER_DIR, write_owner_only
from mycarenet_ic.domain.identifiers import make_cbe
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.security.etee import make_etk
from mycarenet_ic.security.pki import KeyPair, Pki

PLATFORM_CBE = "0820563481"
APPLICATION = "MYCARENET"
UNIONS = ("100", "200", "300", "400", "500", "600", "900")
_lock = threading.Lock()


def insurer_cbe(union: str) -> str:
    """The sandbox's enterprise number of an insurer (union ``100`` … ``900``)."""
    return make_cbe(8_000_000 + int(union))


@dataclass(frozen=True)
class EtkIdentifier:
    type: str
    value: str
    application: str = ""

    def as_json(self) -> dict[str, str]:
        return {"type": self.type, "value": self.value, "application": self.application}


@dataclass(frozen=True)
class EtkEntry:
    identifiers: tuple[EtkIdentifier, ...]
    stem: str
    held: str | None  # "platform" or "insurer:<union>": the sandbox holds the key; None: the holder does


def holder_identifiers(quality: Quality, ssin: str | None, nihii: str | None) -> list[EtkIdentifier]:
    """How the depot finds a holder's ETK: a person by SSIN (and NIHII), an organisation by type and NIHII."""
    if quality.is_organisation:
        return [EtkIdentifier(quality.cert_type, nihii or "")]
    found = [EtkIdentifier("SSIN", ssin or "")]
    return found + ([EtkIdentifier("NIHII", nihii)] if nihii else [])


class EtkRegistry:
    """The ETKs of one data directory's sandbox (``pki/etk``)."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.dir = pki.dir / "etk"
        self._index = self.dir / "registry.json"

    def entries(self) -> list[EtkEntry]:
        if not self._index.exists():
            return []
        raw = json.loads(self._index.read_text())
        return [EtkEntry(tuple(EtkIdentifier(**i) for i in e["identifiers"]), e["stem"], e.get("held"))
                for e in raw["entries"]]

    def _write(self, entries: list[EtkEntry]) -> None:
        data = {"entries": [{"identifiers": [i.as_json() for i in e.identifiers], "stem": e.stem, "held": e.held}
                            for e in entries]}
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".registry.", suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1)
        os.replace(tmp, self._index)

    def ensure_sandbox_parties(self) -> None:
        """The platform's and the insurers' ETKs, made once (what exists is kept)."""
        held = {e.held for e in self.entries()}
        if "platform" not in held:
            self.register([EtkIdentifier("CBE", PLATFORM_CBE, APPLICATION)],
                          self.pki.issue_identity(Quality.PLATFORM, None, None, valid_days=3650, label="etk-mycarenet"),
                          held="platform")
        for union in UNIONS:
            if f"insurer:{union}" not in held:
                pair = self.pki.issue_identity(Quality.PLATFORM, None, None, valid_days=3650,
                                               label=f"etk-insurer-{union}")
                self.register([EtkIdentifier("CBE", insurer_cbe(union), APPLICATION)], pair, held=f"insurer:{union}")

    def register(self, identifiers: list[EtkIdentifier], encryption: KeyPair, held: str | None = None) -> bytes:
        """Make the ETK of ``encryption``'s certificate and list it under ``identifiers`` (an earlier ETK of the
        same identifiers is replaced, as renewing one does); the key is kept only when the sandbox ``held`` it."""
        etk = make_etk(encryption.certificate, self.pki.service("etk-depot"), [self.pki.ca().certificate])
        stem = f"etk-{secrets.token_hex(8)}"
        self.dir.mkdir(mode=OWNER_DIR, parents=True, exist_ok=True)
        (self.dir / f"{stem}.etk").write_bytes(etk)
        (self.dir / f"{stem}.cert.pem").write_bytes(encryption.cert_pem)
        if held is not None:
            write_owner_only(self.dir / f"{stem}.key.pem", encryption.key_pem)
        wanted = set(identifiers)
        with _lock:
            kept = [e for e in self.entries() if not wanted & set(e.identifiers)]
            self._write([*kept, EtkEntry(tuple(identifiers), stem, held)])
        return etk

    def etk(self, entry: EtkEntry) -> bytes:
        return (self.dir / f"{entry.stem}.etk").read_bytes()

    def find(self, type_: str, value: str) -> list[tuple[EtkIdentifier, EtkEntry]]:
        """Every identifier of ``type_`` and ``value`` (whatever its application), with its entry."""
        return [(i, e) for e in self.entries() for i in e.identifiers if i.type == type_ and i.value == value]

    def knows(self, certificate: x509.Certificate) -> bool:
        """Whether ``certificate`` is the encryption certificate of an ETK of this depot."""
        pem = certificate.public_bytes(Encoding.PEM)
        return any((self.dir / f"{e.stem}.cert.pem").read_bytes() == pem for e in self.entries())

    def held_keys(self, prefix: str) -> list[KeyPair]:
        """The key pairs the sandbox holds whose ``held`` starts with ``prefix`` (``platform``, ``insurer``)."""
        return [KeyPair((self.dir / f"{e.stem}.key.pem").read_bytes(), (self.dir / f"{e.stem}.cert.pem").read_bytes())
                for e in self.entries() if e.held is not None and e.held.startswith(prefix)]

    def held_etk(self, held: str) -> bytes:
        return next(self.etk(e) for e in self.entries() if e.held == held)


def issue_etk(pki: Pki, quality: Quality, ssin: str | None, nihii: str | None,
              valid_days: int = 730) -> tuple[KeyPair, bytes]:
    """A holder's encryption key pair and its ETK, registered in the depot (``certs issue --etk``)."""
    pair = pki.issue_identity(quality, ssin, nihii, valid_days=valid_days)
    registry = EtkRegistry(pki)
    return pair, registry.register(holder_identifiers(quality, ssin, nihii), pair)

