"""The workers' board (mycarenet_ic/balance.py): shared across fork, a peer too far behind stops a worker
from accepting, a peer that has not spoken for a while is not waited for and its slot is taken again."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable

import pytest

from mycarenet_ic import balance

pytestmark = pytest.mark.unit


def _in_child(work: Callable[[], object]) -> None:
    """``work`` run in a forked process (another pid, the same board), which must succeed."""
    child = multiprocessing.get_context("fork").Process(target=work)
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0


def test_a_peer_in_another_process_is_seen_and_a_worker_far_ahead_stops() -> None:
    board = balance.Board(4)
    def hold_three() -> None:
        slot = board.claim()
        assert slot is not None
        board.say(slot, 3)  # a worker holding 3 connections

    _in_child(hold_three)
    mine = board.claim()
    assert mine is not None
    assert mine != 0  # the peer's slot is its own while it is alive
    assert board.fewest_of_others(mine) == 3
    assert board.may_accept(mine, 3) and board.may_accept(mine, 3 + balance.SLACK)
    assert not board.may_accept(mine, 4 + balance.SLACK)
    # far ahead: one of its clients is asked to connect again (to the peer, which this worker leaves to accept)
    assert not board.should_shed(mine, 3 + balance.SHED_AFTER)
    assert board.should_shed(mine, 4 + balance.SHED_AFTER)


def test_a_peer_that_went_quiet_is_not_waited_for_and_its_slot_is_taken_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    board = balance.Board(2)
    _in_child(board.claim)  # a worker holding none, then quiet
    mine = board.claim()
    assert mine is not None
    assert not board.may_accept(mine, 10)  # the peer holds none
    later = time.monotonic() + balance.STALE_SECONDS + 1
    monkeypatch.setattr(balance.time, "monotonic", lambda: later)
    assert board.fewest_of_others(mine) is None
    assert board.may_accept(mine, 10)  # alone: gunicorn's own bound only

    def take_the_quiet_slot() -> None:
        assert board.claim() == 1 - mine  # the quiet peer's: a respawned worker takes it

    _in_child(take_the_quiet_slot)


def test_a_full_board_leaves_a_worker_on_gunicorns_bound_alone() -> None:
    board = balance.Board(1)

    def hold_the_only_slot() -> None:
        slot = board.claim()
        assert slot == 0
        board.say(slot, 0)

    _in_child(hold_the_only_slot)
    assert board.claim() is None


def test_a_worker_that_stops_is_not_waited_for() -> None:
    board = balance.Board(2)

    def hold_none_then_leave() -> None:
        slot = board.claim()
        assert slot is not None
        board.say(slot, 0)
        board.leave(slot)

    _in_child(hold_none_then_leave)
    mine = board.claim()
    assert mine is not None
    assert board.fewest_of_others(mine) is None and board.may_accept(mine, 10)
