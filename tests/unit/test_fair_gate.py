"""The in-flight gate: at most its size inside at once, and a freed place goes to the longest waiter."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from mycarenet_ic.gate import FairGate
from tests.unit.test_audit_group import _until

pytestmark = pytest.mark.unit


def _waiting(gate: FairGate, n: int) -> Callable[[], bool]:
    return lambda: len(gate._waiting) == n


def test_waiters_enter_in_the_order_they_came() -> None:
    gate = FairGate(1)
    order: list[int] = []
    inside: list[int] = []
    gate.__enter__()  # the one place taken

    def request(i: int) -> None:
        with gate:
            inside.append(i)
            assert len(inside) == 1
            order.append(i)
            inside.remove(i)

    threads = []
    for i in range(6):  # queued one after the other, in a known order
        t = threading.Thread(target=request, args=(i,))
        t.start()
        threads.append(t)
        _until(_waiting(gate, i + 1))
    gate.__exit__(None, None, None)
    for t in threads:
        t.join(10)
    assert order == list(range(6))


def test_a_newcomer_does_not_take_a_place_someone_waits_for() -> None:
    gate = FairGate(1)
    gate.__enter__()
    entered = {"waiter": threading.Event(), "newcomer": threading.Event()}

    def enter(who: str) -> None:
        gate.__enter__()
        entered[who].set()

    waiter = threading.Thread(target=enter, args=("waiter",))
    waiter.start()
    _until(lambda: len(gate._waiting) == 1)
    gate.__exit__(None, None, None)  # the place is the waiter's now, whether it has run yet or not
    newcomer = threading.Thread(target=enter, args=("newcomer",))
    newcomer.start()
    _until(lambda: len(gate._waiting) == 1 or entered["newcomer"].is_set())
    assert entered["waiter"].wait(10)
    assert not entered["newcomer"].is_set()  # queued behind: the waiter holds the only place
    gate.__exit__(None, None, None)
    assert entered["newcomer"].wait(10)
    gate.__exit__(None, None, None)
    waiter.join(10)
    newcomer.join(10)


def test_size_places_at_once() -> None:
    gate = FairGate(3)
    for _ in range(3):
        gate.__enter__()
    assert not gate._waiting and gate._free == 0
    with pytest.raises(ValueError):
        FairGate(0)
