"""Scenario data shared by the stubs: persons, professionals, organisations, links, mutations.

Loaded from one JSON file (``stubs/scenarios/demo.json`` by default), validated
on load (NISS and NIHII check digits, references between records), changed at
run time through :class:`Scenario` methods (the admin endpoint and the
``mycarenet-ic scenario`` command call them) and saved atomically after each
change when a state file is given.

Several processes may share one state file (``mycarenet-ic serve --sandbox``: gunicorn workers, each with its
own :class:`Scenario`): a change is made under an exclusive lock of ``<state file>.lock`` (``flock``) on the
newest saved state, and every query first takes up what another process saved (the file's inode, time and
size differ from what this one last read or wrote: one ``stat``). Without that, a person added through one
worker's admin API was unknown to the other's National Register.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mycarenet_ic.domain.identifiers import is_valid_cbe, parse_nihii, parse_niss
from mycarenet_ic.domain.nurse_premium import activity_from_dict

T = TypeVar("T")
log = logging.getLogger(__name__)
DEMO_FILE = Path(__file__).parent / "scenarios" / "demo.json"

PROFESSIONS = {
    # profession: (CD-HCPARTY code of the person, friendly name)
    "doctor": ("persphysician", "Doctor"),
    "nurse": ("persnurse", "Nurse"),
    "physiotherapist": ("persphysiotherapist", "Physiotherapist"),
    "dentist": ("persdentist", "Dentist"),
    "midwife": ("persmidwife", "Midwife"),
    "logopedist": ("perslogopedist", "Speech therapist"),
    "orthoptist": ("persorthoptist", "Orthoptist"),
    "podologist": ("perspodologist", "Podologist"),
    "dietician": ("persdietician", "Dietician"),
    "audician": ("persaudician", "Audician"),
    "audiologist": ("persaudiologist", "Audiologist"),
    "occupationaltherapist": ("persoccupationaltherapist", "Occupational therapist"),
    "pharmacist": ("perspharmacist", "Pharmacist"),
}
# Organisation types (the sandbox's names): a group practice of doctors (seed 001 §12: the tariff takes the group
# practice into account) and a tarification office (seed 001 §4, §8; CD-HCPARTY orgpharmacyinvoicingoffice).
ORGANISATION_TYPES = {"pharmacy", "psi", "medicalhouse", "hospital", "grouppractice", "pharmacyinvoicingoffice"}
LINK_TYPES = {code for code, _ in PROFESSIONS.values()} | {"orgpharmacy"}
MUTATION_TYPES = {"SsinReplaced", "Deceased"}


class ScenarioError(ValueError):
    """Scenario data that contradicts itself or the identifier rules."""


def iso_date(value: str | None) -> dt.date | None:
    """A scenario date (ISO text) as a date; None stays None."""
    return dt.date.fromisoformat(value) if value else None


_date = iso_date


@dataclass
class Person:
    ssin: str
    last_name: str
    first_names: list[str]
    birth_date: str | None
    sex: str
    death_date: str | None = None
    replaced_by: str | None = None


@dataclass
class Professional:
    ssin: str
    nihii: str
    profession: str
    visa_from: str
    visa_to: str | None = None
    language: str = "nl"
    workplaces: list[str] = field(default_factory=list)


@dataclass
class Organisation:
    nihii: str
    cbe: str
    type: str
    name: str
    active: bool = True
    active_from: str | None = None
    active_to: str | None = None


@dataclass
class TherapeuticLink:
    patient: str
    hcparty: str
    type: str
    start: str
    end: str | None = None

    def covers(self, patient: str, hcparty: str, on: dt.date) -> bool:
        start, end = _date(self.start), _date(self.end)
        assert start is not None
        return (self.patient == patient and self.hcparty == hcparty and start <= on
                and (end is None or on <= end))


@dataclass
class Mutation:
    seq: int
    type: str
    ssin: str
    date: str
    description: str
    new_ssin: str | None = None


@dataclass
class PsiRole:
    ssin: str
    psi: str
    role: str


class Scenario:
    """In-memory scenario with a lock; every change is validated and saved."""

    def __init__(self, data: dict[str, Any], state_file: Path | None = None) -> None:
        self._lock = threading.RLock()
        self.state_file = state_file
        self._seen: tuple[int, int, int] | None = None  # the state file as this process last read or wrote it
        self._digest: bytes | None = None  # the SHA-256 of its bytes then
        self._take(data)

    def _take(self, data: dict[str, Any]) -> None:
        self.description: str = data.get("description", "")
        self.persons = {p["ssin"]: Person(**p) for p in data.get("persons", [])}
        self.professionals = [Professional(**p) for p in data.get("professionals", [])]
        self.organisations = {o["nihii"]: Organisation(**o) for o in data.get("organisations", [])}
        self.links = [TherapeuticLink(**link) for link in data.get("therapeutic_links", [])]
        self.mutations = sorted((Mutation(**m) for m in data.get("mutations", [])), key=lambda m: m.seq)
        self.psi_roles = [PsiRole(**r) for r in data.get("psi_roles", [])]
        self.extra: dict[str, Any] = {k: v for k, v in data.items() if k not in _KNOWN_KEYS}
        self.validate()

    def _follow(self, changing: bool = False) -> None:
        """Take up the state another process saved since this one last read or wrote it (under ``_lock``).
        A state that does not read or validate is left for the queries (warned once, the memory's kept); a
        change on it is refused instead (``changing``): saving the memory over it would drop what it holds."""
        if self.state_file is None:
            return
        seen = _signature(self.state_file)
        if seen is None or (seen == self._seen and not changing):
            return
        try:
            # A change looks at the bytes too: a file saved again within the clock's granule, of the same size,
            # on an inode just freed (a rule's count going 9 → 8) has the same signature as the last one seen.
            raw = self.state_file.read_bytes()
            digest = hashlib.sha256(raw).digest()
            if digest == self._digest:
                self._seen = seen
                return
            data = json.loads(raw.decode("utf-8"))
            Scenario(data)  # validated whole before this one changes
        except (OSError, ValueError, TypeError, KeyError) as exc:  # ScenarioError is a ValueError
            if changing and isinstance(exc, OSError):
                raise  # the system's failure, not the request's: the caller's generic 500
            if changing:
                raise ScenarioError(f"the saved scenario state is not valid ({exc}); fix or reset it") from None
            log.warning("scenario: the saved state %s is not readable (%s); keeping the one in memory",
                        self.state_file, exc)
        else:
            self._take(data)
            self._digest = digest
        self._seen = seen

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """One change: this process's lock, the state file's lock across processes, on the newest state.
        A change that fails leaves memory as the file says (taken up again), never half made."""
        with self._lock:
            if self.state_file is None:
                yield
                return
            with _file_lock(self.state_file):
                self._follow(changing=True)
                try:
                    yield
                except BaseException:
                    self._seen = self._digest = None  # memory may hold half a change: the file's state again
                    self._follow()
                    raise

    def update_extra(self, key: str, change: Callable[[Any], tuple[Any, T]]) -> T:
        """``change(current)`` gives the entry's new value (``current`` itself: no change) and what to return;
        made as one change, on the
        newest saved state under the state file's lock, so what another process saved meanwhile is neither
        lost nor counted twice (the fault rules a request uses up, workers adding rules at once)."""
        with self._changing():
            current = self.extra.get(key)
            value, result = change(current)
            if value is not current:  # the current value itself: nothing changed, nothing saved
                self.extra[key] = value
                self.save()
            return result

    def extra_now(self, key: str) -> Any:
        """One entry of the scenario's other data as last saved by any process (one ``stat`` when unchanged)."""
        with self._lock:
            self._follow()
            return self.extra.get(key)

    # -- loading and saving ---------------------------------------------------
    @classmethod
    def load(cls, path: Path, state_file: Path | None = None) -> Scenario:
        seen = _signature(Path(path))
        raw = Path(path).read_bytes()
        scenario = cls(json.loads(raw.decode("utf-8")), state_file)
        if state_file is not None and Path(path) == Path(state_file):
            scenario._seen, scenario._digest = seen, hashlib.sha256(raw).digest()
        return scenario

    @classmethod
    def for_data_dir(cls, data_dir: Path, source: Path = DEMO_FILE, reset: bool = False) -> Scenario:
        """The running scenario of a data directory: its saved state, or a fresh copy of ``source``."""
        state = Path(data_dir) / "scenario.json"
        with _file_lock(state):  # two workers starting at once: one makes the state, the other reads it
            if reset or not state.exists():
                scenario = cls.load(source, state)
                scenario.save()
                return scenario
            return cls.load(state, state)

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            self._follow()
            return self._as_dict()

    def _as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "description": self.description,
                "persons": [asdict(p) for p in self.persons.values()],
                "professionals": [asdict(p) for p in self.professionals],
                "organisations": [asdict(o) for o in self.organisations.values()],
                "therapeutic_links": [asdict(link) for link in self.links],
                "mutations": [asdict(m) for m in self.mutations],
                "psi_roles": [asdict(r) for r in self.psi_roles],
                **self.extra,
            }

    def save(self) -> None:
        if self.state_file is None:
            return
        with self._lock:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            # a name of this process's own: two processes saving at once never write one temporary file
            tmp = self.state_file.with_suffix(f".{os.getpid()}.tmp")
            raw = json.dumps(self._as_dict(), indent=1, ensure_ascii=False).encode("utf-8")
            tmp.write_bytes(raw)
            tmp.replace(self.state_file)
            self._seen, self._digest = _signature(self.state_file), hashlib.sha256(raw).digest()

    # -- validation -------------------------------------------------------------
    def validate(self) -> None:
        try:
            for p in self.persons.values():
                parse_niss(p.ssin)
                if p.sex not in ("male", "female", "unknown"):
                    raise ScenarioError(f"person {p.ssin}: sex must be male, female or unknown")
                _date(p.birth_date), _date(p.death_date)
                if p.replaced_by and p.replaced_by not in self.persons:
                    raise ScenarioError(f"person {p.ssin} replaced by an unknown person")
            for o in self.organisations.values():
                parse_nihii(o.nihii, person=False)
                if not is_valid_cbe(o.cbe):
                    raise ScenarioError(f"organisation {o.nihii}: invalid enterprise number {o.cbe}")
                if o.type not in ORGANISATION_TYPES:
                    raise ScenarioError(f"organisation {o.nihii}: unknown type {o.type}")
            for pro in self.professionals:
                parse_nihii(pro.nihii, person=True)
                if pro.ssin not in self.persons:
                    raise ScenarioError(f"professional {pro.nihii} has no person record")
                if pro.profession not in PROFESSIONS:
                    raise ScenarioError(f"professional {pro.nihii}: unknown profession {pro.profession}")
                for w in pro.workplaces:
                    if w not in self.organisations:
                        raise ScenarioError(f"professional {pro.nihii} works in unknown organisation {w}")
            for link in self.links:
                self._check_link(link)
            seqs = [m.seq for m in self.mutations]
            if seqs != sorted(set(seqs)) or (seqs and seqs[0] < 1):
                raise ScenarioError("mutation sequence numbers must be unique and positive")
            for m in self.mutations:
                if m.type not in MUTATION_TYPES:
                    raise ScenarioError(f"mutation {m.seq}: unknown type {m.type}")
                parse_niss(m.ssin)
                if m.type == "SsinReplaced" and not m.new_ssin:
                    raise ScenarioError(f"mutation {m.seq}: SsinReplaced needs new_ssin")
            for a in self.extra.get("insurer_affiliations", []):
                parse_niss(a["ssin"])
                if not (isinstance(a.get("mutuality"), str) and len(a["mutuality"]) == 3 and a["mutuality"].isdigit()):
                    raise ScenarioError(f"affiliation of {a['ssin']}: mutuality must be 3 digits")
                _date(a["start"]), _date(a.get("end"))
            for inc in self.extra.get("inclusions", []):
                parse_niss(inc["patient"])
                org = self.organisations.get(inc["project"])
                if org is None or org.type != "psi":
                    raise ScenarioError(f"inclusion in unknown project {inc['project']}")
                if inc["status"] not in ("principal", "information"):
                    raise ScenarioError(f"inclusion status {inc['status']} unknown")
                _date(inc["start"]), _date(inc.get("end")), _date(inc.get("consent_date"))
            for r in self.psi_roles:
                if r.role not in ("administrative", "coordinator"):
                    raise ScenarioError(f"PSI role {r.role} unknown")
                org = self.organisations.get(r.psi)
                if org is None or org.type != "psi":
                    raise ScenarioError(f"PSI role for unknown project {r.psi}")
            if "home_nursing" in self.extra:
                self._check_home_nursing(self.extra["home_nursing"])
        except (KeyError, TypeError) as exc:
            raise ScenarioError(f"incomplete scenario record: {exc}") from None
        except ValueError as exc:
            if isinstance(exc, ScenarioError):
                raise
            raise ScenarioError(str(exc)) from None

    def _check_home_nursing(self, part: dict[str, Any]) -> None:
        """Seed 002's billed home nursing and providers' status: every provider a scenario nurse, every
        patient a scenario person (the rest: :func:`activity_from_dict`)."""
        activity = activity_from_dict(part)
        nurses = {p.nihii for p in self.professionals if p.profession == "nurse"}
        for nihii in sorted({p.nihii for p in activity.providers} | {s.dispenser for s in activity.services}):
            if nihii not in nurses:
                raise ScenarioError(f"home nursing: {nihii} is no scenario nurse")
        for patient in sorted({s.patient for s in activity.services}):
            if patient not in self.persons:
                raise ScenarioError(f"home nursing: patient {patient} has no person record")

    def _check_link(self, link: TherapeuticLink) -> None:
        parse_niss(link.patient)
        if link.type not in LINK_TYPES:
            raise ScenarioError(f"link type {link.type} unknown")
        if link.type == "orgpharmacy":
            org = self.organisations.get(link.hcparty)
            if org is None or org.type != "pharmacy":
                raise ScenarioError(f"link to unknown pharmacy {link.hcparty}")
        elif not any(p.nihii == link.hcparty for p in self.professionals):
            raise ScenarioError(f"link to unknown professional {link.hcparty}")
        if _date(link.start) is None:
            raise ScenarioError("link needs a start date")
        _date(link.end)

    # -- queries ------------------------------------------------------------------
    def person(self, ssin: str) -> Person | None:
        with self._lock:
            self._follow()
            return self.persons.get(ssin)

    def professional(self, *, ssin: str | None = None, nihii: str | None = None) -> Professional | None:
        with self._lock:
            self._follow()
            for pro in self.professionals:
                if (ssin and pro.ssin == ssin) or (nihii and (pro.nihii == nihii or pro.nihii[:8] == nihii)):
                    return pro
            return None

    def professionals_of(self, ssin: str) -> list[Professional]:
        with self._lock:
            self._follow()
            return [p for p in self.professionals if p.ssin == ssin]

    def organisation(self, *, nihii: str | None = None, cbe: str | None = None) -> Organisation | None:
        with self._lock:
            self._follow()
            for org in self.organisations.values():
                if (nihii and org.nihii == nihii) or (cbe and org.cbe == cbe):
                    return org
            return None

    def link(self, patient: str, hcparty: str, on: dt.date) -> TherapeuticLink | None:
        with self._lock:
            self._follow()
            return next((lk for lk in self.links if lk.covers(patient, hcparty, on)), None)

    def roles_of(self, ssin: str) -> list[PsiRole]:
        with self._lock:
            self._follow()
            return [r for r in self.psi_roles if r.ssin == ssin]

    def mutations_after(self, seq: int, limit: int) -> tuple[list[Mutation], bool]:
        with self._lock:
            self._follow()
            after = [m for m in self.mutations if m.seq > seq]
            return after[:limit], len(after) > limit

    @property
    def last_mutation_seq(self) -> int:
        with self._lock:
            self._follow()
            return self._last_seq()

    def _last_seq(self) -> int:
        return self.mutations[-1].seq if self.mutations else 0

    # -- changes ------------------------------------------------------------------
    def add_link(self, patient: str, hcparty: str, type: str, start: str, end: str | None = None) -> TherapeuticLink:
        link = TherapeuticLink(patient, hcparty, type, start, end)
        with self._changing():
            self._check_link(link)
            self.links.append(link)
            self.save()
        return link

    def remove_links(self, patient: str, hcparty: str) -> int:
        with self._changing():
            before = len(self.links)
            self.links = [lk for lk in self.links if not (lk.patient == patient and lk.hcparty == hcparty)]
            self.save()
            return before - len(self.links)

    def record_death(self, ssin: str, date: str) -> Mutation:
        with self._changing():
            person = self.persons.get(ssin)
            if person is None:
                raise ScenarioError(f"unknown person {ssin}")
            _date(date)
            person.death_date = date
            mutation = Mutation(self._last_seq() + 1, "Deceased", ssin, date, "Person deceased")
            self.mutations.append(mutation)
            self.save()
            return mutation

    def replace_ssin(self, old: str, new: str, date: str) -> Mutation:
        with self._changing():
            person = self.persons.get(old)
            if person is None:
                raise ScenarioError(f"unknown person {old}")
            parse_niss(new)
            if new in self.persons:
                raise ScenarioError(f"{new} is already a person")
            _date(date)
            self.persons[new] = Person(new, person.last_name, list(person.first_names), person.birth_date,
                                       person.sex, person.death_date)
            person.replaced_by = new
            mutation = Mutation(self._last_seq() + 1, "SsinReplaced", old, date,
                                "SSIN replaced by a new one", new_ssin=new)
            self.mutations.append(mutation)
            self.save()
            return mutation

    def add_person(self, record: dict[str, Any]) -> Person:
        return self.add_persons([record])[0]

    def add_persons(self, records: list[dict[str, Any]]) -> list[Person]:
        """Add several persons at once (validated first, saved once)."""
        persons = [Person(**record) for record in records]
        with self._changing():
            for person in persons:
                parse_niss(person.ssin)
                if person.ssin in self.persons:
                    raise ScenarioError(f"{person.ssin} already exists")
            for person in persons:
                self.persons[person.ssin] = person
            self.validate()  # a bad record raises here: _changing takes the saved state up again
            self.save()
        return persons

    def apply(self, change: dict[str, Any]) -> dict[str, Any]:
        """Apply one admin change ``{"action": …, …}``; return what it did."""
        action = change.get("action")
        args = {k: v for k, v in change.items() if k != "action"}
        try:
            if action == "add-link":
                return {"link": asdict(self.add_link(**args))}
            if action == "remove-links":
                return {"removed": self.remove_links(**args)}
            if action == "death":
                return {"mutation": asdict(self.record_death(**args))}
            if action == "replace-ssin":
                return {"mutation": asdict(self.replace_ssin(**args))}
            if action == "add-person":
                return {"person": asdict(self.add_person(args))}
            if action == "add-persons":
                return {"persons": len(self.add_persons(list(args.get("persons", []))))}
        except TypeError as exc:
            raise ScenarioError(f"bad arguments for {action}: {exc}") from None
        except ValueError as exc:
            raise ScenarioError(str(exc)) from None
        raise ScenarioError(f"unknown action {action!r}")


@contextlib.contextmanager
def _file_lock(state_file: Path) -> Iterator[None]:
    """The state file's lock across processes (``flock`` of ``<state file>.lock``, owner-only)."""
    state_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{state_file}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _signature(path: Path) -> tuple[int, int, int] | None:
    """What tells one saved state from the next (each save is a new file renamed over the old)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


_KNOWN_KEYS = {"description", "persons", "professionals", "organisations", "therapeutic_links", "mutations",
               "psi_roles"}
