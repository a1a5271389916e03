"""Keystores the vendors' tools read (issue 18, item 3): ``certs issue`` writes a PKCS#12 with a password
(a printed default, or ``--p12-password``) and the sandbox CA in the chain, which Java's keytool and
OpenSSL open with that password and refuse without it; ``--hok`` writes the holder-of-key's the same way."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

pytestmark = pytest.mark.integration


def _issue(tmp_path: Path, *extra: str) -> tuple[Path, str]:
    out = subprocess.run([sys.executable, "-m", "mycarenet_ic.cli", "certs", "issue", "--ssin", "74030902123",
                          "--nihii", "11200035003", "--quality", "doctor", "--out", str(tmp_path / "me"),
                          "--data-dir", str(tmp_path / "data"), *extra],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return tmp_path / "me" / "doctor-74030902123.p12", out.stdout


def test_the_keystore_has_a_printed_password_and_the_ca_in_its_chain(tmp_path: Path) -> None:
    p12, printed = _issue(tmp_path)
    assert "p12 password: sandbox" in printed
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(p12.read_bytes(), None)
    key, cert, chain = pkcs12.load_key_and_certificates(p12.read_bytes(), b"sandbox")
    ca = x509.load_pem_x509_certificate((tmp_path / "data" / "pki" / "ca.cert.pem").read_bytes())
    assert key is not None and cert is not None and chain == [ca]
    assert cert.issuer == ca.subject


def test_the_holder_of_key_keystore_is_written_the_same_way(tmp_path: Path) -> None:
    p12, printed = _issue(tmp_path, "--hok")
    hok = p12.with_name("doctor-74030902123-hok.p12")
    assert f"hok p12: {hok}" in printed
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(hok.read_bytes(), None)
    key, cert, chain = pkcs12.load_key_and_certificates(hok.read_bytes(), b"sandbox")
    _, identity, _ = pkcs12.load_key_and_certificates(p12.read_bytes(), b"sandbox")
    ca = x509.load_pem_x509_certificate((tmp_path / "data" / "pki" / "ca.cert.pem").read_bytes())
    assert key is not None and cert is not None and chain == [ca]
    assert identity is not None and cert.subject == identity.subject and cert != identity


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command here")
def test_openssl_opens_it_with_the_password_only(tmp_path: Path) -> None:
    p12, _ = _issue(tmp_path, "--p12-password", "s3cret")
    good = subprocess.run(["openssl", "pkcs12", "-in", str(p12), "-passin", "pass:s3cret", "-nokeys"],
                          capture_output=True, text=True, timeout=60)
    assert good.returncode == 0 and good.stdout.count("BEGIN CERTIFICATE") == 2
    bad = subprocess.run(["openssl", "pkcs12", "-in", str(p12), "-passin", "pass:sandbox", "-nokeys"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0


@pytest.mark.skipif(shutil.which("keytool") is None, reason="no Java keytool here")
def test_java_keytool_reads_a_private_key_entry_with_its_chain(tmp_path: Path) -> None:
    p12, _ = _issue(tmp_path)
    listed = subprocess.run(["keytool", "-list", "-v", "-keystore", str(p12), "-storetype", "PKCS12",
                             "-storepass", "sandbox"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "Entry type: PrivateKeyEntry" in listed.stdout and "Certificate chain length: 2" in listed.stdout
    wrong = subprocess.run(["keytool", "-list", "-keystore", str(p12), "-storetype", "PKCS12",
                            "-storepass", "not-it"], capture_output=True, text=True, timeout=120)
    assert wrong.returncode != 0
