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

import collections
import datetime as dt
import enum
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyotp

from mycarenet_ic.config import owner_only_dir, write_owner_only
from mycarenet_ic.domain.identifiers import InvalidIdentifier, parse_niss
from mycarenet_ic.domain.inclusions import Role
from mycarenet_ic.domain.qualities import CallerIdentity, Quality
from mycarenet_ic.errors import AccessDenied
from mycarenet_ic.persistence.pseudonym import Pseudonymiser
from mycarenet_ic.services.ports import AttributeAuthority, AuditEntry, AuditLog, Cobrha, NationalRegister
from mycarenet_ic.services.requesters import active_organisation, checked_profession

ISSUER = "MyCareNet sandbox"
SERVICE = "idp"
# The subject the use cases and the audit see for a person signed in here (no certificate: the IdP vouches).
SUBJECT = "SERIALNUMBER={ssin}, OU=eHealth IdP (sandbox), O=MyCareNet sandbox"


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

    id: int
    keys: tuple[str, ...]
    blocked_by: str | None = None


class Throttle:
    """Sign-in attempts counted per key within ``window`` seconds, each kind of key with its own limit.

    :meth:`attempt` checks every key of an attempt and, when none is at its limit, counts the attempt against
    all of them, in one step under one lock: a burst of parallel attempts gets exactly ``limit`` through,
    never one more (checking then recording in two steps let several pass the check before any was
    recorded). An attempt counts as a failure until :meth:`forgive` takes it back (its code was right)."""

    def __init__(self, limits: Mapping[str, int], window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits, self.window, self.clock = dict(limits), window, clock
        self._counted: dict[str, collections.deque[tuple[float, int]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def attempt(self, keys: Mapping[str, str]) -> Attempt:
        """``keys``: kind (one of ``limits``) → key. Blocked by the first kind at its limit, else counted."""
        with self._lock:
            now = self.clock()
            for kind, key in keys.items():
                if len(self._recent(f"{kind}|{key}", now)) >= self.limits[kind]:
                    return Attempt(0, (), blocked_by=kind)
            attempt = Attempt(next(self._ids), tuple(f"{kind}|{key}" for kind, key in keys.items()))
            for key in attempt.keys:
                self._counted.setdefault(key, collections.deque()).append((now, attempt.id))
            return attempt

    def forgive(self, attempt: Attempt) -> None:
        """Take ``attempt`` back: it was no failure."""
        with self._lock:
            for key in attempt.keys:
                kept = [entry for entry in self._counted.get(key, ()) if entry[1] != attempt.id]
                if kept:
                    self._counted[key] = collections.deque(kept)
                else:
                    self._counted.pop(key, None)

    def _recent(self, key: str, now: float) -> collections.deque[tuple[float, int]]:
        counted = self._counted.get(key, collections.deque())
        while counted and counted[0][0] <= now - self.window:
            counted.popleft()
        if not counted:
            self._counted.pop(key, None)
        return counted


class IdentityProvider:
    def __init__(self, secrets: TotpSecrets, cobrha: Cobrha, attribute_authority: AttributeAuthority,
                 national_register: NationalRegister, audit: AuditLog, today: Callable[[], dt.date] = dt.date.today,
                 max_failures: int = 5, lockout_seconds: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.secrets = secrets
        self.cobrha, self.aa, self.nr = cobrha, attribute_authority, national_register
        self.audit = audit
        self.today = today
        self.clock = clock
        self.throttle = Throttle({"address+account": max_failures, "account": max_failures * 2,
                                  "all": max_failures * 20}, lockout_seconds)
        self._last_step: dict[str, int] = {}
        self._lock = threading.Lock()

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
        in; SignInRefused otherwise. Audited either way."""
        entry = AuditEntry(SERVICE, "SignIn", detail=f"profile={profile.value} factor=totp")
        try:
            identity = self._sign_in(ssin.strip(), code.strip(), profile, client, entry)
        except SignInRefused as exc:
            entry.outcome = "DENIED"
            entry.detail += f" refused: {exc.reason}"
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
        with self._lock:
            if self._last_step.get(ssin, -1) >= step:
                raise SignInRefused("code already used")
            self._last_step[ssin] = step
        try:
            identity = self.identity(ssin, profile)
        except AccessDenied as exc:
            raise SignInRefused(f"may not enter as {profile.value}: {exc.reason}") from None
        return identity

    def _step(self, secret: str | None, code: str) -> int | None:
        """The time step ``code`` is valid for (this one or the one before, for a clock a little behind)."""
        if secret is None or not (code.isdigit() and len(code) == 6):
            return None
        totp = pyotp.TOTP(secret)
        now = self.clock()
        for drift in (0, -1):
            at = now + drift * totp.interval
            if pyotp.utils.strings_equal(totp.at(at), code):
                return int(at // totp.interval)
        return None
