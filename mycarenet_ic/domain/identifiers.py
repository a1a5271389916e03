"""Belgian identifiers: NISS/SSIN (National Register and BIS numbers) and NIHII.

NISS: 11 digits ``YYMMDD`` + 3-digit sequence + 2 check digits. The check is
``97 - (first nine digits mod 97)``; for people born in 2000 or later the same
is computed on ``"2" + first nine``. BIS numbers add 20 (sex unknown) or 40
(sex known) to the month. An odd sequence means male, even female.

NIHII: 8 digits (organisations may stop there) or 11 for persons: a profession
digit, a 5-digit sequence, 2 check digits ``97 - (first six mod 97)`` and, for
persons, a 3-digit qualification. A modulo-89 variant exists for newer numbers
but nobody here has seen its formula, so only modulo 97 is accepted.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass


class InvalidIdentifier(ValueError):
    """An identifier that does not follow its format or check digits."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"invalid {kind}: {reason}")
        self.kind = kind
        self.reason = reason


class Sex(enum.Enum):
    MALE = "male"
    FEMALE = "female"
    UNKNOWN = "unknown"


def _digits(value: str, lengths: tuple[int, ...], kind: str) -> str:
    if not isinstance(value, str):
        raise InvalidIdentifier(kind, "not a string")
    compact = value.strip().replace(".", "").replace("-", "").replace(" ", "")
    if not compact.isascii() or not compact.isdigit():
        raise InvalidIdentifier(kind, "must hold digits only")
    if len(compact) not in lengths:
        raise InvalidIdentifier(kind, f"must have {' or '.join(map(str, lengths))} digits")
    return compact


def _mod97_check(number: int) -> int:
    return 97 - (number % 97)


@dataclass(frozen=True)
class Niss:
    """A valid NISS (national number or BIS number)."""

    value: str
    born_2000_or_later: bool
    is_bis: bool
    sex: Sex
    birth_date: dt.date | None

    def __str__(self) -> str:
        return self.value


def parse_niss(value: str) -> Niss:
    """Validate a NISS/SSIN and return what it encodes; raise InvalidIdentifier."""
    niss = _digits(value, (11,), "NISS")
    body, check = niss[:9], int(niss[9:])
    if _mod97_check(int(body)) == check:
        century = 1900
    elif _mod97_check(int("2" + body)) == check:
        century = 2000
    else:
        raise InvalidIdentifier("NISS", "check digits do not match")
    yy, mm, dd, seq = int(niss[0:2]), int(niss[2:4]), int(niss[4:6]), int(niss[6:9])
    is_bis = False
    sex = Sex.MALE if seq % 2 else Sex.FEMALE
    if 40 <= mm <= 52:
        is_bis, mm = True, mm - 40
    elif 20 <= mm <= 32:
        is_bis, mm, sex = True, mm - 20, Sex.UNKNOWN
    if mm > 12 or dd > 31:
        raise InvalidIdentifier("NISS", "birth date part is not a date")
    if seq in (0, 999):
        raise InvalidIdentifier("NISS", "sequence number out of range")
    birth: dt.date | None = None
    if mm and dd:
        try:
            birth = dt.date(century + yy, mm, dd)
        except ValueError:
            raise InvalidIdentifier("NISS", "birth date part is not a date") from None
    return Niss(niss, century == 2000, is_bis, sex, birth)


def is_valid_niss(value: str) -> bool:
    try:
        parse_niss(value)
    except InvalidIdentifier:
        return False
    return True


def make_niss(birth: dt.date, sequence: int, bis: str | None = None) -> str:
    """Build a valid NISS for a birth date and sequence (test data, scenario files)."""
    if not 1 <= sequence <= 998:
        raise ValueError("sequence must be 1..998")
    month = birth.month + {None: 0, "unknown-sex": 20, "known-sex": 40}[bis]
    body = f"{birth.year % 100:02d}{month:02d}{birth.day:02d}{sequence:03d}"
    base = int(("2" + body) if birth.year >= 2000 else body)
    return f"{body}{_mod97_check(base):02d}"


class NihiiKind(enum.Enum):
    """What the first digit of a NIHII number says about its holder."""

    DOCTOR = "1"
    DENTIST = "3"
    NURSE_OR_MIDWIFE = "4"
    PHYSIOTHERAPIST = "5"
    PHARMACIST = "6"
    HOSPITAL = "7"
    LABORATORY = "8"
    OTHER = "other"


@dataclass(frozen=True)
class Nihii:
    """A valid NIHII number; ``qualification`` is None for 8-digit numbers."""

    value: str
    kind: NihiiKind
    qualification: str | None

    @property
    def base(self) -> str:
        """The 8-digit identifier without the qualification."""
        return self.value[:8]

    def __str__(self) -> str:
        return self.value


def parse_nihii(value: str, *, person: bool | None = None) -> Nihii:
    """Validate a NIHII number.

    ``person=True`` requires the 11-digit form with a qualification,
    ``person=False`` accepts the 8- or 11-digit organisation forms,
    ``None`` accepts both.
    """
    lengths = (11,) if person else (8, 11)
    nihii = _digits(value, lengths, "NIHII")
    if _mod97_check(int(nihii[:6])) != int(nihii[6:8]):
        raise InvalidIdentifier("NIHII", "check digits do not match")
    try:
        kind = NihiiKind(nihii[0])
    except ValueError:
        kind = NihiiKind.OTHER
    return Nihii(nihii, kind, nihii[8:] if len(nihii) == 11 else None)


def make_nihii(kind_digit: int, sequence: int, qualification: str | None = None) -> str:
    """Build a valid NIHII (test data, scenario files)."""
    if not 0 <= kind_digit <= 9 or not 0 <= sequence <= 99999:
        raise ValueError("kind digit 0..9 and sequence 0..99999")
    first6 = f"{kind_digit}{sequence:05d}"
    out = f"{first6}{_mod97_check(int(first6)):02d}"
    if qualification is not None:
        if len(qualification) != 3 or not qualification.isdigit():
            raise ValueError("qualification must be 3 digits")
        out += qualification
    return out


def is_valid_cbe(value: str) -> bool:
    """Belgian enterprise number (BCE/KBO): 10 digits starting 0 or 1, mod 97 check."""
    try:
        cbe = _digits(value, (10,), "CBE")
    except InvalidIdentifier:
        return False
    return cbe[0] in "01" and _mod97_check(int(cbe[:8])) == int(cbe[8:])


def make_cbe(number: int) -> str:
    first8 = f"{number:08d}"
    if first8[0] not in "01" or len(first8) != 8:
        raise ValueError("enterprise numbers start with 0 or 1")
    return f"{first8}{_mod97_check(int(first8)):02d}"
