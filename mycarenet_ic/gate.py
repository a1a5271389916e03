"""The in-flight gate: at most ``size`` business requests worked on at once in a process, the others
waiting their turn in the order they came.

``threading.BoundedSemaphore`` lets a newcomer take a place just freed before the waiter woken for it
runs again (under the GIL that is the common case), so an unlucky request can wait behind many that
came after it: that was the 16-client tail (p99 well over twice the p50). Here a freed place is handed
to the longest waiter directly."""

from __future__ import annotations

import collections
import threading
from types import TracebackType


class FairGate:
    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a gate holds at least one request")
        self._free = size
        self._lock = threading.Lock()
        self._waiting: collections.deque[threading.Lock] = collections.deque()

    def __enter__(self) -> FairGate:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return self
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        turn.acquire()  # released by the request whose place this becomes
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()  # the place goes to the longest waiter, not to a newcomer
            else:
                self._free += 1
