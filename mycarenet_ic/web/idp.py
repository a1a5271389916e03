"""The sandbox's eHealth IdentityProvider: sign-in by NISS and a TOTP second factor (RFC 6238).

Who may enter follows seed 000 §10–§13, asked of the same sources the services ask (CoBrHa, the
AttributeAuthority, the National Register) through the same checks (:mod:`mycarenet_ic.services.requesters`):

- a citizen (patient) by their NISS, known in the National Register;
- a care provider known in CoBrHa with a VISA valid today;
- a pharmacist of a pharmacy CoBrHa shows as open today;
- PSI staff with a role the AttributeAuthority gives them (administrative, coordinator).

A person is enrolled once (``mycarenet-ic idp enrol --ssin …``): a random TOTP secret, kept in the data
directory's ``secrets/idp/`` (0600 files in a 0700 directory, named by a keyed pseudonym, not the NISS). A
code is taken once (the same code twice is refused), wrong ones are throttled (:class:`Throttle`, the bounds
in :meth:`IdentityProvider.throttle_keys`), and every sign-in, taken or refused, is audited (service ``idp``).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyotp
from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import Engine

from mycarenet_ic.config import owner_only_dir, write_owner_only
from mycarenet_ic.domain.identifiers import InvalidIdentifier, parse_niss
from mycarenet_ic.domain.inclusions import Role
from mycarenet_ic.domain.qualities import CallerIdentity, Quality
from mycarenet_ic.errors import AccessDenied, ServerError
from mycarenet_ic.persistence.pseudonym import Pseudonymiser
from mycarenet_ic.persistence.tables import web_signin_attempts
from mycarenet_ic.security.wssec import ReplayCache
from mycarenet_ic.services.ports import AttributeAuthority, AuditEntry, AuditLog, Cobrha, NationalRegister
from mycarenet_ic.services.requesters import active_organisation, checked_profession

ISSUER = "MyCareNet sandbox"
SERVICE = "idp"
# The subject the use cases and the audit see for a person signed in here (no certificate: the IdP vouches).
SUBJECT = "SERIALNUMBER={ssin}, OU=eHealth IdP (sandbox), O=MyCareNet sandbox"
TOTP_INTERVAL = 30  # seconds: pyotp's and every authenticator app's default
_THROTTLE_LOCK = 0x6D636E5448  # the sign-in throttle's PostgreSQL advisory lock (any constant of its own)


class Profile(enum.Enum):
    """The ways in seed 000 names: as patient, care provider, pharmacist or PSI staff."""

    CITIZEN = "citizen"
    PROVIDER = "provider"
    PHARMACIST = "pharmacist"
    PSI_STAFF = "psi-staff"

    @property
    def roles(self) -> frozenset[Role]:
        """The roles a session of this profile acts in, and no other: the profile is a boundary (a PSI
        administrative signed in as a citizen is only a patient; as PSI staff, never a patient)."""
        return _PROFILE_ROLES[self]


_PROFILE_ROLES = {
    Profile.CITIZEN: frozenset({Role.PATIENT}),
    Profile.PROVIDER: frozenset({Role.PROVIDER}),
    Profile.PHARMACIST: frozenset({Role.PHARMACIST}),
    Profile.PSI_STAFF: frozenset({Role.PSI_ADMINISTRATIVE, Role.PSI_COORDINATOR}),
}


class SignInRefused(Exception):
    """A refused sign-in. ``reason`` is for the audit; the person sees one message whatever it is,
    except ``throttled`` (wait and try again)."""

    def __init__(self, reason: str, throttled: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.throttled = throttled


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str


class TotpSecrets:
    """One TOTP secret per enrolled person, each in its own owner-only file."""

    def __init__(self, data_dir: Path, pseudonymiser: Pseudonymiser) -> None:
        self.dir = Path(data_dir) / "secrets" / "idp"
        self.pseudonymiser = pseudonymiser

    def _file(self, ssin: str) -> Path:
        return self.dir / f"{self.pseudonymiser.pseudonym(ssin, 'idp')[:40]}.totp"

    def enrol(self, ssin: str) -> Enrolment:
        """A new secret for ``ssin`` (replacing any earlier one)."""
        ssin = parse_niss(ssin).value
        secret = pyotp.random_base32()
        owner_only_dir(self.dir)
        write_owner_only(self._file(ssin), secret.encode())
        return Enrolment(secret, pyotp.TOTP(secret).provisioning_uri(name=ssin, issuer_name=ISSUER))

    def secret(self, ssin: str) -> str | None:
        path = self._file(ssin)
        return path.read_text().strip() if path.exists() else None


@dataclass(frozen=True)
class Attempt:
    """One sign-in attempt as the throttle counted it: against ``keys``, unless ``blocked_by`` names the
    bound (a key kind) that was already reached, in which case nothing was counted and nothing may be tried."""

    id: str
    keys: tuple[str, ...]
    blocked_by: str | None = None


class Throttle:
    """Sign-in attempts counted per key within ``window`` seconds, each kind of key with its own limit, in
    the platform's database (table ``web_signin_attempts``): every worker counts with the others, and a
    restart forgives nothing.

    :meth:`attempt` checks every key of an attempt and, when none is at its limit, counts the attempt against
    all of them, in one transaction that holds the throttle's lock (SQLite: the write lock every writer
    takes first; PostgreSQL: a transaction-level advisory lock): a burst of parallel attempts gets exactly
    ``limit`` through, never one more (a check and a record in two steps let several pass the check
    before any was recorded). An attempt counts as a failure until :meth:`forgive` takes it back (its code
    was right). Rows older than the window are deleted by every attempt: the table stays bounded."""

    def __init__(self, engine: Engine, limits: Mapping[str, int], window: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine, self.limits, self.window, self.clock = engine, dict(limits), window, clock

    @staticmethod
    def _key(kind: str, key: str) -> str:
        return hashlib.sha256(f"{kind}|{key}".encode()).hexdigest()

    def attempt(self, keys: Mapping[str, str]) -> Attempt:
        """``keys``: kind (one of ``limits``) → key. Blocked by the first kind at its limit, else counted."""
        table = web_signin_attempts
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _THROTTLE_LOCK})
            now = self.clock()
            conn.execute(delete(table).where(table.c.at <= now - self.window))
            for kind, key in keys.items():
                counted = conn.execute(select(func.count()).select_from(table).where(
                    table.c.key == self._key(kind, key), table.c.at > now - self.window)).scalar_one()
                if counted >= self.limits[kind]:
                    return Attempt("", (), blocked_by=kind)
            attempt = Attempt(secrets.token_hex(16), tuple(self._key(kind, key) for kind, key in keys.items()))
            conn.execute(table.insert(), [{"attempt": attempt.id, "key": key, "at": now} for key in attempt.keys])
        return attempt

    def forgive(self, attempt: Attempt) -> None:
        """Take ``attempt`` back: it was no failure."""
        with self.engine.begin() as conn:
            conn.execute(delete(web_signin_attempts).where(web_signin_attempts.c.attempt == attempt.id))


class IdentityProvider:
    def __init__(self, secrets: TotpSecrets, cobrha: Cobrha, attribute_authority: AttributeAuthority,
                 national_register: NationalRegister, audit: AuditLog, engine: Engine, replay: ReplayCache,
                 today: Callable[[], dt.date] = dt.date.today, max_failures: int = 5, lockout_seconds: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.secrets = secrets
        self.cobrha, self.aa, self.nr = cobrha, attribute_authority, national_register
        self.audit, self.replay = audit, replay
        self.today = today
        self.clock = clock
        self.throttle = Throttle(engine, {"address+account": max_failures, "account": max_failures * 2,
                                          "all": max_failures * 20}, lockout_seconds)

    # -- who may enter ---------------------------------------------------------------------------------
    def identity(self, ssin: str, profile: Profile) -> CallerIdentity:
        """The identity ``ssin`` enters with in ``profile``; AccessDenied if the seed lets them not."""
        today = self.today()

        def ident(quality: Quality, nihii: str | None = None) -> CallerIdentity:
            return CallerIdentity(quality, ssin, nihii, SUBJECT.format(ssin=ssin), f"idp:{profile.value}")

        if profile is Profile.CITIZEN:
            person = self.nr.person(ssin)
            if person is None or person.replaced_by or person.death_date is not None:
                raise AccessDenied("The National Register knows no living person with this NISS.")
            return ident(Quality.CITIZEN)
        if profile is Profile.PSI_STAFF:
            if not self.aa.roles(ssin):
                raise AccessDenied("The person has no role in an integrated-care project.")
            return ident(Quality.PSI_STAFF)
        pro = self.cobrha.professional(ssin=ssin)
        wanted = Quality.PHARMACIST if profile is Profile.PHARMACIST else None
        for profession in pro.professions if pro is not None else ():
            quality = next((q for q in Quality if q.hcparty_code == profession.code), None)
            if quality is None or (wanted is not None and quality is not wanted) or \
                    (wanted is None and quality is Quality.PHARMACIST):
                continue
            candidate = ident(quality, profession.nihii)
            try:
                checked_profession(self.cobrha, candidate, today)
                if quality is Quality.PHARMACIST:
                    self._open_pharmacy(profession.workplaces, today)
            except AccessDenied:
                continue
            return candidate
        raise AccessDenied(f"CoBrHa knows no {'pharmacist of an open pharmacy' if wanted else 'care provider'} "
                           "with a valid VISA for this NISS.")

    def _open_pharmacy(self, workplaces: tuple[str, ...], today: dt.date) -> str:
        for nihii in workplaces:
            try:
                return active_organisation(self.cobrha, nihii, Quality.PHARMACY.organisation_type, today,
                                           "pharmacy").nihii or nihii
            except AccessDenied:
                continue
        raise AccessDenied("The pharmacist works in no pharmacy that is open.")

    # -- signing in ------------------------------------------------------------------------------------
    def sign_in(self, ssin: str, code: str, profile: Profile, client: str) -> CallerIdentity:
        """The identity of a person who gave their NISS, a current TOTP code and a profile they may enter
        in; SignInRefused otherwise; a ServerError when a source (CoBrHa, the AttributeAuthority, the National
        Register) did not answer. Audited whichever it is."""
        entry = AuditEntry(SERVICE, "SignIn", detail=f"profile={profile.value} factor=totp")
        try:
            identity = self._sign_in(ssin.strip(), code.strip(), profile, client, entry)
        except SignInRefused as exc:
            entry.outcome = "DENIED"
            entry.detail += f" refused: {exc.reason}"
            self.audit.append(entry)
            raise
        except ServerError as exc:     # a source that did not answer: nothing decided, audited all the same
            entry.outcome = "ERROR"
            entry.detail += f" not decided: {exc.reason}"
            self.audit.append(entry)
            raise
        entry.caller = self.audit.caller_label(identity)
        self.audit.append(entry)
        return identity

    def throttle_keys(self, ssin: str, client: str) -> dict[str, str]:
        """What a sign-in attempt counts against (failures within ``lockout_seconds``):

        - ``address+account``: this NISS from this client address (5): the person mistyping, or someone
          guessing their code from one place, waits; nobody else does;
        - ``account``: this NISS from anywhere (10): guesses spread over many addresses stop too (a
          six-digit code with two valid at a time: at most 20 in a million per window);
        - ``all``: every attempt that failed, whoever and wherever (100): a spray over many accounts.

        Not per client address alone: every user of a local sandbox comes from 127.0.0.1, and one of them
        getting their code wrong a few times must not lock out all the others. The last bound does lock
        everyone out for the window: it is reached only by an attack, far above honest mistakes."""
        account = self.secrets.pseudonymiser.pseudonym(ssin, "idp-throttle")
        return {"address+account": self.secrets.pseudonymiser.pseudonym(f"{client}|{account}", "idp-throttle"),
                "account": account, "all": "*"}

    def _sign_in(self, ssin: str, code: str, profile: Profile, client: str, entry: AuditEntry) -> CallerIdentity:
        try:
            ssin = parse_niss(ssin).value
        except InvalidIdentifier:
            raise SignInRefused("not a valid NISS") from None   # no code was tried: nothing to count
        entry.patient = None
        entry.caller = self.audit.caller_label(CallerIdentity(Quality.CITIZEN, ssin, None, "", ""))
        attempt = self.throttle.attempt(self.throttle_keys(ssin, client))
        if attempt.blocked_by is not None:
            raise SignInRefused(f"too many failed sign-ins ({attempt.blocked_by})", throttled=True)
        secret = self.secrets.secret(ssin)
        step = self._step(secret, code)
        if step is None:
            raise SignInRefused("not enrolled" if secret is None else "wrong or expired code")
        self.throttle.forgive(attempt)   # the code was right (taken already or not): no guess to count
        if not self._take(ssin, step):
            raise SignInRefused("code already used")
        try:
            identity = self.identity(ssin, profile)
        except AccessDenied as exc:
            raise SignInRefused(f"may not enter as {profile.value}: {exc.reason}") from None
        return identity

    def _take(self, ssin: str, step: int) -> bool:
        """Whether the code of ``step`` is taken now for the first time, in the replay cache every worker
        shares; the step before it is taken with it (a code older than one already taken is no good)."""
        def key(at: int) -> str:
            return self.secrets.pseudonymiser.pseudonym(f"{ssin}|{at}", "idp-totp")

        expires = dt.datetime.fromtimestamp((step + 3) * TOTP_INTERVAL, dt.UTC)
        if not self.replay.check_and_store(key(step), expires):
            return False
        self.replay.check_and_store(key(step - 1), expires)
        return True

    def _step(self, secret: str | None, code: str) -> int | None:
        """The time step ``code`` is valid for (this one or the one before, for a clock a little behind)."""
        if secret is None or not (code.isdigit() and len(code) == 6):
            return None
        totp = pyotp.TOTP(secret, interval=TOTP_INTERVAL)
        now = self.clock()
        for drift in (0, -1):
            at = now + drift * totp.interval
            if pyotp.utils.strings_equal(totp.at(at), code):
                return int(at // totp.interval)
        return None
