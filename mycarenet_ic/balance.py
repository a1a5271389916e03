"""``serve``'s workers share the clients' kept-alive connections evenly.

gunicorn's workers accept from one listening socket, and a kept-alive connection stays with the worker that
took it. Clients that connect at once split as the workers happen to wake: 16 clients over 2 workers were
11 and 5 for a whole run (``ss -tnp``), so the 11 waited twice as long as the 5 and the p99 was over twice
the p50. Here each worker says, in memory the arbiter shares with the workers it forks, how many connections
it holds and that it is alive; a worker holding more than ``SLACK`` over the least loaded live peer stops
accepting until that peer has caught up (the peer takes the waiting connections). A peer that has not said
it is alive for ``STALE_SECONDS`` (hung, stopped, not started yet) is not waited for: a worker alone always
accepts, up to gunicorn's own bound (``worker_connections``).
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import struct
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

SLACK = 1
STALE_SECONDS = 2.0
RECHECK_SECONDS = 0.01
_SLOT = struct.Struct("qqd")  # pid, connections held, when it last said so (time.monotonic, one clock per host)


class Board:
    """The workers' slots: ``slots`` of (pid, connections, heartbeat), in anonymous shared memory."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._memory = mmap.mmap(-1, _SLOT.size * slots)  # MAP_SHARED: the forked workers see one another
        self._claiming = multiprocessing.Lock()

    def _read(self, index: int) -> tuple[int, int, float]:
        pid, held, beat = _SLOT.unpack_from(self._memory, index * _SLOT.size)
        return int(pid), int(held), float(beat)

    def claim(self) -> int | None:
        """A slot for this process: its own, else one no live worker holds (None: every slot is a live
        worker's — workers respawned faster than they go quiet; this one then accepts as gunicorn's would)."""
        me, now = os.getpid(), time.monotonic()
        with self._claiming:
            slots = [self._read(i) for i in range(self.slots)]
            free = next((i for i, (pid, _, beat) in enumerate(slots) if pid == me), None)
            if free is None:
                free = next((i for i, (pid, _, beat) in enumerate(slots)
                             if pid == 0 or now - beat > STALE_SECONDS), None)
            if free is None:
                return None
            self.say(free, 0)
            return free

    def say(self, index: int, held: int) -> None:
        _SLOT.pack_into(self._memory, index * _SLOT.size, os.getpid(), held, time.monotonic())

    def may_accept(self, index: int, held: int) -> bool:
        """Said by the worker of slot ``index``, holding ``held`` connections: whether it may take another
        (no live peer, or none it is more than ``SLACK`` ahead of)."""
        self.say(index, held)
        fewest = self.fewest_of_others(index)
        return fewest is None or held <= fewest + SLACK

    def fewest_of_others(self, index: int) -> int | None:
        """The fewest connections a live peer holds (None: no live peer)."""
        now = time.monotonic()
        held = [h for i in range(self.slots) if i != index
                for pid, h, beat in [self._read(i)] if pid and now - beat <= STALE_SECONDS]
        return min(held) if held else None


_BOARD: list[Board] = []


def prepare(workers: int) -> None:
    """In the arbiter, before it forks: the board the workers of this process will share (respawned
    workers take the slot of one that is gone)."""
    _BOARD[:] = [Board(max(2, 2 * workers))]


class BalancedThreadWorker(ThreadWorker):
    """gunicorn's threaded worker, accepting only while it holds no more than ``SLACK`` connections over the
    least loaded live peer. gunicorn checks ``nr_conns < worker_connections`` before each wait for events
    and accepts only while that holds: the bound is read here, and said to the board at the same time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._bound = 0
        self._slot: int | None = None
        super().__init__(*args, **kwargs)

    def init_process(self) -> None:
        if _BOARD:
            self._slot = _BOARD[0].claim()
        super().init_process()

    @property
    def worker_connections(self) -> int:
        held: int = self.nr_conns
        if not _BOARD or self._slot is None or _BOARD[0].may_accept(self._slot, held):
            return self._bound
        return held  # not below it: accept nothing until a peer has caught up

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self._bound = value

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        # Not accepting for a peer's sake: look again soon (the peer's count changes without waking this loop).
        super().wait_for_and_dispatch_events(timeout if self._accepting else min(timeout, RECHECK_SECONDS))
