"""Sandbox PKI: a CA, service certificates, and test certificates for callers.

Subjects follow the eHealth pattern: ``C=BE, O=Federal Government,
OU=eHealth-platform Belgium``, an OU per identifier (``SSIN=…``, ``NIHII=…``)
and a CN naming the holder (``SSIN=…`` for a person, ``NIHII-PHARMACY=…`` for a
pharmacy). Real eHealth certificates carry no quality: the STS adds it as a
SAML attribute. With no STS in the sandbox, an ``OU=QUALITY=…`` carries it.

Private keys (``*.key.pem``, ``*.p12``) are written 0600 and never readable by anyone else even for a
moment; the PKI directory is 0700, and keys an older version left wider are tightened when it is opened.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mycarenet_ic.config import OWNER_DIR, tighten, write_owner_only
from mycarenet_ic.domain.identifiers import parse_nihii, parse_niss
from mycarenet_ic.domain.qualities import CallerIdentity, Quality

SERVICE_NAMES = ("mycarenet", "attribute-authority", "cobrha", "national-register", "sts", "coding", "etk-depot")
CA_CN = "MyCareNet sandbox CA"
_OU_PLATFORM = "eHealth-platform Belgium"


@dataclass(frozen=True)
class KeyPair:
    key_pem: bytes
    cert_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_ca(valid_days: int = 3650) -> KeyPair:
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "BE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MyCareNet sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, CA_CN),
            # Each sandbox has its own CA: a serial in the name keeps two of them apart in one trust store
            # (TLS clients pick the issuer by name).
            x509.NameAttribute(NameOID.SERIAL_NUMBER, secrets.token_hex(8)),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return KeyPair(_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def holder_name(quality: Quality, ssin: str | None, nihii: str | None, label: str | None = None,
                with_quality: bool = True) -> x509.Name:
    """The eHealth-style subject for a holder; validates the identifiers it names.

    ``with_quality`` adds the sandbox's own ``OU=QUALITY=…`` (and a person's ``OU=NIHII=…``) for the simple
    X.509 mode; without it the subject is as eHealth writes it (a person: only the NISS; an organisation:
    ``<type>=<NIHII>``), and what the holder is comes from the STS."""
    if ssin is not None:
        parse_niss(ssin)
    if nihii is not None:
        parse_nihii(nihii)
    if quality.is_organisation and quality is not Quality.PLATFORM and nihii is None:
        raise ValueError(f"a {quality.value} certificate needs --nihii")
    if not quality.is_organisation and ssin is None:
        raise ValueError(f"a {quality.value} certificate needs --ssin")
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "BE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Federal Government"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _OU_PLATFORM),
    ]
    if ssin:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"SSIN={ssin}"))
    if not with_quality and quality.is_organisation:
        number = (label or "sandbox") if quality is Quality.PLATFORM else nihii
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"{quality.cert_type}={number}"))
    elif nihii and with_quality:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"NIHII={nihii}"))
    if with_quality:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"QUALITY={quality.value}"))
    if label:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, label))
    if quality is Quality.PLATFORM:
        cn = f"CBE={label or 'sandbox'}"
    elif quality.is_organisation:
        cn = f"{quality.cert_type}={nihii}"
    else:
        cn = f"SSIN={ssin}"
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _leaf(ca: KeyPair, subject: x509.Name, valid_days: int, not_before: dt.datetime | None,
          server_names: list[x509.GeneralName] | None = None) -> KeyPair:
    """A certificate the CA issues: for signing messages (clientAuth, non-repudiation), or, with
    ``server_names``, a TLS server certificate for them (serverAuth)."""
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    key = _new_key()
    start = not_before or (_now() - dt.timedelta(minutes=5))
    server = server_names is not None
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=not server, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                              else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    if server_names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(server_names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return KeyPair(_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def issue(
    ca: KeyPair,
    subject: x509.Name,
    valid_days: int = 730,
    not_before: dt.datetime | None = None,
) -> KeyPair:
    return _leaf(ca, subject, valid_days, not_before)


def issue_tls_server(ca: KeyPair, hosts: list[str], valid_days: int = 825) -> KeyPair:
    """A TLS server certificate from the sandbox CA for ``hosts`` (DNS names or IP addresses, all in the
    subjectAltName; the first is the CN), for serverAuth only."""
    import ipaddress

    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MyCareNet sandbox"),
                         x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    return _leaf(ca, subject, valid_days, None, names)


PRIVATE_SUFFIXES = (".key.pem", ".p12")


def write_keypair(pair: KeyPair, out_dir: Path, stem: str, p12_password: bytes | None = None,
                  chain: list[x509.Certificate] | None = None) -> dict[str, Path]:
    """Write ``stem.key.pem``, ``stem.cert.pem`` and ``stem.p12``; the key and the .p12 are 0600 from their
    first byte, whatever the umask or the mode of a file they replace. A directory made here is 0700."""
    out_dir.mkdir(mode=OWNER_DIR, parents=True, exist_ok=True)
    key_path, cert_path, p12_path = (out_dir / f"{stem}.key.pem", out_dir / f"{stem}.cert.pem",
                                     out_dir / f"{stem}.p12")
    write_owner_only(key_path, pair.key_pem)
    cert_path.write_bytes(pair.cert_pem)
    key = serialization.load_pem_private_key(pair.key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    # With a password, PBES2 (AES-256-CBC, PBKDF2-SHA256) and a SHA-256 MAC: what Java's keytool (8u301+,
    # 11, 17) and .NET read; ``chain`` (the CA) goes in beside the key's certificate.
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(100_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(hashes.SHA256()).build(p12_password)
        if p12_password else serialization.NoEncryption()
    )
    write_owner_only(p12_path, pkcs12.serialize_key_and_certificates(stem.encode(), key, pair.certificate, chain,
                                                                      encryption))
    return {"key": key_path, "cert": cert_path, "p12": p12_path}


def read_keypair(directory: Path, stem: str) -> KeyPair:
    return KeyPair((directory / f"{stem}.key.pem").read_bytes(), (directory / f"{stem}.cert.pem").read_bytes())


# A client signs every request with the same certificate: what its subject says is read once per certificate
# (py-spy: 3 % of a MemberData request's CPU). Certificates hash and compare by their DER bytes; the identity is
# immutable; a subject that names no holder raises and is not kept.
@functools.lru_cache(maxsize=4096)
def identity_from_certificate(cert: x509.Certificate) -> CallerIdentity:
    """Read the holder's identity from a (verified) sandbox/eHealth-style subject."""
    values: dict[str, str] = {}
    for attr in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME):
        text = attr.value if isinstance(attr.value, str) else attr.value.decode()
        if "=" in text:
            k, _, v = text.partition("=")
            values.setdefault(k.strip().upper(), v.strip())
    nihii = values.get("NIHII")
    if "QUALITY" in values:  # the sandbox's simple X.509 mode: the certificate says what the holder is
        try:
            quality = Quality(values["QUALITY"])
        except ValueError:
            raise ValueError("certificate names no known quality") from None
    else:  # as eHealth writes it: an organisation by its type, a person is only a person
        by_type = {q.cert_type: q for q in Quality if q.is_organisation}
        org = next((by_type[k] for k in values if k in by_type), None)
        if org is not None:
            quality, nihii = org, (None if org is Quality.PLATFORM else values.get(org.cert_type))
        elif values.get("SSIN"):
            quality, nihii = Quality.CITIZEN, None
        else:
            raise ValueError("certificate names no known holder")
    fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return CallerIdentity(
        quality=quality,
        ssin=values.get("SSIN"),
        nihii=nihii,
        subject=cert.subject.rfc4514_string(),
        fingerprint=fingerprint,
    )


class Pki:
    """The sandbox PKI kept in ``<data-dir>/pki``."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir) / "pki"
        self.tighten()

    def tighten(self) -> None:
        """Make the PKI directory 0700 and its private keys 0600 (an older version wrote them wider)."""
        if not self.dir.is_dir():
            return
        tighten(self.dir)
        for entry in self.dir.iterdir():
            if entry.name.endswith(PRIVATE_SUFFIXES):
                tighten(entry)

    @property
    def initialised(self) -> bool:
        return (self.dir / "ca.cert.pem").exists()

    def init(self, force: bool = False) -> list[Path]:
        """Create the CA and one certificate per service; keep existing ones unless ``force``."""
        written: list[Path] = []
        self.dir.mkdir(mode=OWNER_DIR, parents=True, exist_ok=True)
        self.tighten()
        if self.initialised and not force:
            ca = read_keypair(self.dir, "ca")
        else:
            ca = create_ca()
            written.extend(write_keypair(ca, self.dir, "ca").values())
        for name in SERVICE_NAMES:
            if (self.dir / f"{name}.cert.pem").exists() and not force and written == []:
                continue
            pair = issue(ca, holder_name(Quality.PLATFORM, None, None, label=name), valid_days=3650)
            written.extend(write_keypair(pair, self.dir, name).values())
        return written

    def ca(self) -> KeyPair:
        return read_keypair(self.dir, "ca")

    @property
    def ca_file(self) -> Path:
        """The trust anchor clients give to check the sandbox's TLS certificate (and its signatures)."""
        return self.dir / "ca.cert.pem"

    def tls_server(self, host: str) -> tuple[Path, Path]:
        """``(cert, key)`` of the sandbox's TLS server certificate for ``host`` (and localhost,
        127.0.0.1, ::1), issued by the sandbox CA the first time it is asked for, or again for a new host."""
        hosts = list(dict.fromkeys([host, "localhost", "127.0.0.1", "::1"]))
        cert_path, key_path = self.dir / "tls-server.cert.pem", self.dir / "tls-server.key.pem"
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            try:
                san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                known = {str(v) for v in san.get_values_for_type(x509.IPAddress)}
                known |= set(san.get_values_for_type(x509.DNSName))
            except x509.ExtensionNotFound:
                known = set()
            if host in known and cert.issuer == self.ca().certificate.subject and \
                    cert.not_valid_after_utc > _now() + dt.timedelta(days=1):
                return cert_path, key_path
        pair = issue_tls_server(self.ca(), hosts)
        write_keypair(pair, self.dir, "tls-server")
        return cert_path, key_path

    def service(self, name: str) -> KeyPair:
        return read_keypair(self.dir, name)

    def issue_holder(self, quality: Quality, ssin: str | None, nihii: str | None, valid_days: int = 730) -> KeyPair:
        """A certificate for the simple X.509 mode: it says the holder's quality itself."""
        return issue(self.ca(), holder_name(quality, ssin, nihii), valid_days=valid_days)

    def issue_identity(self, quality: Quality, ssin: str | None, nihii: str | None, valid_days: int = 730,
                       label: str | None = None) -> KeyPair:
        """An identity certificate as eHealth issues it (no quality: the STS certifies that), also fit to be
        a holder-of-key certificate (the STS binds a token to its key)."""
        return issue(self.ca(), holder_name(quality, ssin, nihii, label=label, with_quality=False),
                     valid_days=valid_days)
