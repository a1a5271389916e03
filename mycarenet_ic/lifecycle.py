"""How a long-running command ends: on SIGTERM or SIGINT, and when whoever reads its standard output
has gone (``mycarenet-ic sandbox | head -3``, a supervisor that closed the pipe): a service nobody can
hear any more would otherwise keep its port forever."""

from __future__ import annotations

import select
import sys
import threading

# Set once a write to standard output failed (the pipe's reader is gone).
OUTPUT_LOST = threading.Event()


def output_closed() -> bool:
    """True when standard output was lost: a write failed, or it is a pipe whose reading end was closed
    (Linux reports that as POLLERR on the writing end; a terminal that hung up as POLLHUP)."""
    if OUTPUT_LOST.is_set():
        return True
    try:
        fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else 1
        poller = select.poll()
        poller.register(fd, 0)  # no events asked for: only errors and hang-ups are reported
        events = poller.poll(0)
    except (OSError, ValueError, AttributeError):
        return False
    return any(mask & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, mask in events)


def wait_until_stopped(done: threading.Event, every: float = 0.2) -> str:
    """Block until ``done`` is set or standard output is lost; say which ("signal" or "output closed")."""
    while not done.wait(every):  # the signal handler sets it; the poll looks after the pipe
        if output_closed():
            return "output closed"
    return "signal"


def settle_heap() -> None:
    """What a long-running process built to start (schemas, WSDLs, Spyne's and SQLAlchemy's models, the
    PKI) is left out of the garbage collector's full collections from now on: with it in, each full
    collection walked the whole start-up heap with the GIL held, 40-60 ms during which every request of
    the process stood still (the p99 of 16 clients: all of them late at the same instant). The garbage of
    the start is collected first; what requests make is collected as before. Only for a process that
    serves until it stops (a test process that starts many sandboxes would keep each one's cycles)."""
    import gc

    gc.collect()
    gc.freeze()
