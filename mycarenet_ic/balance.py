"""``serve``'s workers share the clients' kept-alive connections evenly.

gunicorn's workers accept from one listening socket, and a kept-alive connection stays with the worker that
took it. Clients that connect at once split as the workers happen to wake: 16 clients over 2 workers were
11 and 5 for a whole run (``ss -tnp``), so the 11 waited twice as long as the 5 and the p99 was over twice
the p50. Here each worker says, in memory the arbiter shares with the workers it forks, how many connections
load it and that it is alive; a worker holding more than ``SLACK`` over the least loaded live peer stops
accepting until that peer has caught up (the peer takes the waiting connections), and one far ahead (after
connections closed unevenly) answers one client with ``Connection: close``, so that it connects again, to the
peer. A peer that has not said it is alive for ``STALE_SECONDS`` (hung, killed) is not waited for: a worker
alone always accepts, up to gunicorn's own bound (``worker_connections``).
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
SHED_AFTER = SLACK + 1  # ahead by more than this: one client is asked to connect again
IDLE_SECONDS = 0.25  # a kept-alive connection unused this long does not count (see _held)
SHED_EVERY_SECONDS = 0.5  # at most one a worker in this time: the peer takes it before the next is asked
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
            free = next((i for i, (pid, _, _beat) in enumerate(slots) if pid == me), None)
            if free is None:
                free = next((i for i, (pid, _, beat) in enumerate(slots)
                             if pid == 0 or now - beat > STALE_SECONDS), None)
            if free is None:
                return None
            self.say(free, 0)
            return free

    def leave(self, index: int) -> None:
        """The worker of slot ``index`` stops: its slot is free at once (a killed one's goes quiet instead)."""
        _SLOT.pack_into(self._memory, index * _SLOT.size, 0, 0, 0.0)

    def say(self, index: int, held: int) -> None:
        _SLOT.pack_into(self._memory, index * _SLOT.size, os.getpid(), held, time.monotonic())

    def may_accept(self, index: int, held: int) -> bool:
        """Said by the worker of slot ``index``, holding ``held`` connections: whether it may take another
        (no live peer, or none it is more than ``SLACK`` ahead of)."""
        self.say(index, held)
        fewest = self.fewest_of_others(index)
        return fewest is None or held <= fewest + SLACK

    def should_shed(self, index: int, held: int) -> bool:
        """Whether the worker of slot ``index``, holding ``held``, is so far ahead of a live peer (more than
        ``SHED_AFTER``) that one of its clients should connect again, to the peer: connections that closed
        unevenly (the workers' own calls to the stubs, kept alive a while at the start) leave the split the
        accepting made."""
        fewest = self.fewest_of_others(index)
        return fewest is not None and held > fewest + SHED_AFTER

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
    and accepts only while that holds: the bound is read here, and said to the board at the same time; and
    it closes a kept-alive connection after its answer once it keeps ``max_keepalived``, read here too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._bound = 0
        self._keep = 0
        self._shed_at = 0.0
        self._slot: int | None = None
        super().__init__(*args, **kwargs)

    def init_process(self) -> None:
        if _BOARD:
            self._slot = _BOARD[0].claim()
        super().init_process()

    def run(self) -> None:
        try:
            super().run()
        finally:
            if _BOARD and self._slot is not None:  # not waited for by its peers while it stops
                _BOARD[0].leave(self._slot)

    @property
    def worker_connections(self) -> int:
        held = self._held()
        if not _BOARD or self._slot is None or _BOARD[0].may_accept(self._slot, held):
            return self._bound
        return self.nr_conns  # not below it: accept nothing until a peer has caught up

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self._bound = value

    def _held(self) -> int:
        """The connections that load this worker: all it holds but those kept alive and idle for
        ``IDLE_SECONDS`` (a client gone quiet; the workers' own calls to the stubs, kept a while after)."""
        idle_since = time.monotonic() - IDLE_SECONDS + self.cfg.keepalive  # gunicorn: timeout = last use + keepalive
        kept = list(getattr(self, "keepalived_conns", ()))  # a copy: the loop's own (gunicorn 27's name)
        idle = sum(1 for conn in kept if conn.timeout < idle_since)
        return int(self.nr_conns) - idle

    @property
    def max_keepalived(self) -> int:
        """gunicorn answers with ``Connection: close`` while it keeps this many connections alive; read as an
        answer is made (in a request's thread): 0 for one answer when this worker is far ahead of a peer, so
        that client connects again, to the peer (this worker, ahead, does not accept it)."""
        if _BOARD and self._slot is not None and _BOARD[0].should_shed(self._slot, self._held()):
            now = time.monotonic()
            if now - self._shed_at >= SHED_EVERY_SECONDS:
                self._shed_at = now
                return 0
        return self._keep

    @max_keepalived.setter
    def max_keepalived(self, value: int) -> None:
        self._keep = value

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        # Not accepting for a peer's sake: look again soon (the peer's count changes without waking this loop).
        accepting = getattr(self, "_accepting", True)
        super().wait_for_and_dispatch_events(timeout if accepting else min(timeout, RECHECK_SECONDS))
