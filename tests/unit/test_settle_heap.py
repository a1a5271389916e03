"""settle_heap: the start-up heap leaves the full collections, its garbage collected first."""

from __future__ import annotations

import gc
import weakref

import pytest

from mycarenet_ic.lifecycle import settle_heap

pytestmark = pytest.mark.unit


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_the_start_up_garbage_is_collected_and_what_lives_is_frozen() -> None:
    was_enabled = gc.isenabled()
    gc.disable()  # no collection of its own between the cycle's making and settle_heap
    before = gc.get_freeze_count()
    try:
        garbage = _Node()
        gone = weakref.ref(garbage)
        del garbage
        kept = [_Node() for _ in range(100)]
        settle_heap()
        assert gone() is None  # collected, not frozen in for ever
        assert gc.get_freeze_count() >= before + len(kept)  # the living start-up objects left out
        assert not any(gc.is_tracked(k) and k in gc.get_objects(generation=2) for k in kept[:3])
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()
