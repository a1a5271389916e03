"""Keyed pseudonyms: HMAC-SHA256 with one key per domain, so a NISS is never stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path


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
        path = Path(data_dir) / "secrets" / "pseudonym.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(secrets.token_bytes(32))
            tmp.chmod(0o600)
            tmp.replace(path)
        return cls(path.read_bytes())
