"""Keyed pseudonyms: HMAC-SHA256 with one key per domain, so a NISS is never stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from mycarenet_ic.config import secret_file


class Pseudonymiser:
    def __init__(self, master_key: bytes) -> None:
        if len(master_key) < 32:
            raise ValueError("pseudonym key must be at least 32 bytes")
        self._master = master_key
        self._keys: dict[str, bytes] = {}

    def _key(self, domain: str) -> bytes:
        key = self._keys.get(domain)
        if key is None:
            key = hmac.new(self._master, f"domain:{domain}".encode(), hashlib.sha256).digest()
            self._keys[domain] = key
        return key

    def pseudonym(self, niss: str, domain: str = "patient") -> str:
        return hmac.new(self._key(domain), niss.encode(), hashlib.sha256).hexdigest()

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> Pseudonymiser:
        """Load the key from ``<data-dir>/secrets/pseudonym.key``, creating it once."""
        return cls(secret_file(Path(data_dir) / "secrets" / "pseudonym.key", lambda: secrets.token_bytes(32)))


class NissSealer:
    """Reversible protection of a NISS (AES-256-GCM) for the paths that must re-identify.

    Inclusions are keyed by the HMAC pseudonym; the sealed NISS beside it is opened only to
    export declarations to the insurers, to show a coordinator their project's patients, and to
    show the operator's NISS (seed 000 annex, data 10) to whoever may consult the inclusion, each
    audited. Its key lives apart from the database (``<data-dir>/secrets/niss-seal.key``).
    """

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != 32:
            raise ValueError("the NISS seal key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, niss: str) -> str:
        nonce = secrets.token_bytes(12)
        return (nonce + self._aead.encrypt(nonce, niss.encode(), b"niss")).hex()

    def open(self, sealed: str) -> str:
        raw = bytes.fromhex(sealed)
        return self._aead.decrypt(raw[:12], raw[12:], b"niss").decode()

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> NissSealer:
        return cls(secret_file(Path(data_dir) / "secrets" / "niss-seal.key", lambda: secrets.token_bytes(32)))

