"""Several processes on one scenario state file (``serve --sandbox``: gunicorn workers): what one saves the
others see at their next query, and changes made at once in two processes are all kept."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from mycarenet_ic.domain.identifiers import make_niss
from mycarenet_ic.stubs.scenario import Scenario, ScenarioError

pytestmark = pytest.mark.unit


def _ssin(n: int) -> str:
    return make_niss(dt.date(1950, 1, 1) + dt.timedelta(days=n // 400), 501 + n % 400)


def _person(n: int) -> dict[str, object]:
    return {"ssin": _ssin(n), "last_name": "Shared", "first_names": ["S"], "birth_date": None, "sex": "unknown"}


def _add_one_by_one(data_dir: str, first: int, count: int, start: Any) -> None:
    scenario = Scenario.for_data_dir(Path(data_dir))  # this process's own copy, loaded once
    start.wait()  # both processes loaded: now at once
    for n in range(first, first + count):
        scenario.add_person(_person(n))


def test_a_person_saved_by_one_process_is_known_to_the_other_at_its_next_query(tmp_path: Path) -> None:
    one = Scenario.for_data_dir(tmp_path)
    other = Scenario.for_data_dir(tmp_path)
    assert other.person(_ssin(1)) is None
    one.add_person(_person(1))
    found = other.person(_ssin(1))
    assert found is not None and found.last_name == "Shared"
    other.record_death(_ssin(1), "2026-11-30")  # a change on the newest state, seen back by the first
    assert one.last_mutation_seq == other.last_mutation_seq
    assert one.person(_ssin(1)).death_date == "2026-11-30"


def test_changes_made_at_once_in_two_processes_are_all_kept(tmp_path: Path) -> None:
    Scenario.for_data_dir(tmp_path, reset=True)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [context.Process(target=_add_one_by_one, args=(str(tmp_path), first, 40, start)) for first in (0, 400)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    saved = {p["ssin"] for p in json.loads((tmp_path / "scenario.json").read_text())["persons"]}
    assert {_ssin(n) for n in [*range(40), *range(400, 440)]} <= saved  # not one lost to the other's save
    assert all(Scenario.for_data_dir(tmp_path).person(_ssin(n)) for n in (0, 39, 400, 439))


def test_an_unreadable_saved_state_leaves_the_one_in_memory(tmp_path: Path) -> None:
    scenario = Scenario.for_data_dir(tmp_path)
    scenario.add_person(_person(7))
    (tmp_path / "scenario.json").write_text('{"persons": [{"ssin": "12345678901"}]}')  # broken by hand
    assert scenario.person(_ssin(7)) is not None  # a warning is logged; queries go on


def test_a_change_on_an_unreadable_saved_state_is_refused_and_leaves_the_file(tmp_path: Path) -> None:
    scenario = Scenario.for_data_dir(tmp_path)
    broken = '{"persons": [{"ssin": "12345678901"}]}'
    (tmp_path / "scenario.json").write_text(broken)
    with pytest.raises(ScenarioError, match="not valid"):
        scenario.add_person(_person(8))
    assert (tmp_path / "scenario.json").read_text() == broken  # not overwritten from this process's memory


def test_a_bad_record_is_refused_whole_in_memory_and_on_disk(tmp_path: Path) -> None:
    scenario = Scenario.for_data_dir(tmp_path)
    before = (tmp_path / "scenario.json").read_text()
    with pytest.raises(ScenarioError):
        scenario.add_persons([_person(9), {**_person(10), "birth_date": "not a date"}])
    assert scenario.person(_ssin(9)) is None and scenario.person(_ssin(10)) is None
    assert (tmp_path / "scenario.json").read_text() == before


def test_the_fault_rules_saved_by_one_process_keep_a_person_another_added(tmp_path: Path) -> None:
    from mycarenet_ic.services.fault_injection import FaultInjector

    faults_side = Scenario.for_data_dir(tmp_path)  # loaded before the person exists
    injector = FaultInjector(faults_side)
    Scenario.for_data_dir(tmp_path).add_person(_person(11))  # another process
    injector.add({"id": "slow", "effect": "delay", "service": "memberdata", "delay_ms": 10})
    saved = json.loads((tmp_path / "scenario.json").read_text())
    assert _ssin(11) in {p["ssin"] for p in saved["persons"]}
    assert [r["id"] for r in saved["faults"]] == ["slow"]


def test_a_change_sees_another_process_s_save_even_when_the_file_s_signature_does_not_tell(tmp_path: Path) -> None:
    """A save within the clock's granule, of the same size, on an inode just freed (a fault rule's count going
    down) has the signature of the state before: a change still reads the bytes, so no count is lost."""
    from mycarenet_ic.stubs.scenario import _signature

    one, other = Scenario.for_data_dir(tmp_path), Scenario.for_data_dir(tmp_path)  # two workers

    def count_down(value: Any) -> tuple[int, int]:
        left = 9 if value is None else int(value) - 1
        return left, left

    assert one.update_extra("left", count_down) == 9
    assert other.update_extra("left", count_down) == 8
    one._seen = _signature(tmp_path / "scenario.json")  # as if the signature had not changed
    assert one.update_extra("left", count_down) == 7  # 8 before it, not its own 9
    assert other.extra_now("left") == 7


def test_a_source_rule_without_an_id_is_fixed_once_so_every_worker_names_it_the_same(tmp_path: Path) -> None:
    from mycarenet_ic.services.fault_injection import FaultInjector

    source = Scenario.for_data_dir(tmp_path)
    source.update_extra("faults", lambda _none: ([{"effect": "drop", "service": "memberdata", "for_seconds": 600}],
                                                 None))  # as a scenario file may give it: no id, a duration
    first = FaultInjector(Scenario.for_data_dir(tmp_path))
    (rule,) = first.rules()
    second = FaultInjector(Scenario.for_data_dir(tmp_path))  # another worker, later
    assert [(r.id, r.until) for r in second.rules()] == [(rule.id, rule.until)]  # the same id and end
    assert second.clear(rule.id) == 1
    assert first.rules() == []


def test_a_rule_for_a_time_is_applied_without_saving_and_a_broken_list_can_be_cleared(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from lxml import etree

    from mycarenet_ic.services.fault_injection import FaultInjector

    scenario = Scenario.for_data_dir(tmp_path)
    injector = FaultInjector(scenario)
    injector.add({"id": "hour", "effect": "drop", "service": "memberdata", "for_seconds": 3600})
    state = tmp_path / "scenario.json"
    before = state.read_bytes()
    who = SimpleNamespace(ssin=None, nihii=None)
    for _ in range(3):
        assert injector.decide("memberdata", "op", who, etree.fromstring(b"<x/>")).rule is not None
    assert state.read_bytes() == before  # nothing used up, nothing saved
    broken = json.loads(before)
    broken["faults"] = [{"effect": "not-an-effect"}]  # edited by hand while running
    state.write_text(json.dumps(broken))
    assert injector.clear() == 1
    assert injector.rules() == [] and json.loads(state.read_text())["faults"] == []
