"""Group commit: callers that each need one item written durably, where a transaction costs more than an
item in it (the audit chain's head, the replay cache's insert).

One caller at a time (the leader) writes every item waiting, in one transaction; the others wait for the
transaction that holds their item. When the leader is done it hands the lead to the first caller that came
meanwhile. Nobody returns before its item is committed; a group the database refuses is written again item
by item, so that only the refused item's caller fails. Without contention a group is one item: the cost is
one lock and one list more than writing it alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    woken: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    done: bool = False
    result: R | None = None
    error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """``commit(items)`` writes ``items`` in one transaction and returns one result per item, in order."""

    def __init__(self, commit: Callable[[Sequence[T]], list[R]]) -> None:
        self._commit = commit
        self._lock = threading.Lock()
        self._waiting: list[_Waiting[T, R]] = []
        self._leading = False

    def submit(self, item: T) -> R:
        """``item`` committed (with whoever else waits); its result, or the error its transaction raised."""
        me: _Waiting[T, R] = _Waiting(item)
        with self._lock:
            self._waiting.append(me)
            if not self._leading:
                self._leading = me.lead = True
        if not me.lead:
            me.woken.wait()  # either my item is in (or failed), or I am handed the lead
        if me.lead:
            self._lead()
        if me.error is not None:
            raise me.error
        return me.result  # type: ignore[return-value]

    def _alone(self, one: _Waiting[T, R]) -> None:
        try:
            one.result = self._commit([one.item])[0]
            one.done = True
        except Exception as exc:  # noqa: BLE001 - handed to the caller whose item it is
            one.error = exc

    def _lead(self) -> None:
        with self._lock:
            group, self._waiting = self._waiting, []
        try:
            try:
                results = self._commit([w.item for w in group])
            except Exception:
                if len(group) == 1:
                    raise
                # One item the database refuses must not take the others with it: each on its own.
                for one in group:
                    self._alone(one)
            else:
                for one, result in zip(group, results, strict=True):
                    one.result, one.done = result, True
        except BaseException as exc:  # noqa: BLE001 - handed to the callers whose items it stopped
            for one in group:
                if one.error is None and not one.done:
                    one.error = exc
        finally:
            with self._lock:
                for one in group:
                    one.lead = False
                    one.woken.set()
                if self._waiting:
                    self._waiting[0].lead = True
                    self._waiting[0].woken.set()
                else:
                    self._leading = False
