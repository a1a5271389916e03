"""``MutationSync.catch_up``: a process that does not follow the mutation feed reads it all the same, applying
nothing, so that its National Register cache forgets every person the feed names (two workers of ``serve``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from mycarenet_ic.clients.gateways import CachingNationalRegister
from mycarenet_ic.domain.records import MutationBatch, Person, PersonMutation
from mycarenet_ic.services.mutations import MutationSync

pytestmark = pytest.mark.unit

DAY = dt.date(2026, 11, 2)


class Register:
    """The National Register behind the cache: ``persons`` answered (each lookup counted) and a feed."""

    def __init__(self, feed: list[PersonMutation]) -> None:
        self.feed = feed
        self.lookups: dict[str, int] = {}
        self.reads: list[int] = []

    def person(self, ssin: str) -> Person:
        self.lookups[ssin] = self.lookups.get(ssin, 0) + 1
        return Person(ssin, "Name", ("First",), None, "unknown")

    def mutations_after(self, seq: int, max_results: int = 100) -> MutationBatch:
        self.reads.append(seq)
        after = [m for m in self.feed if m.seq > seq]
        return MutationBatch(tuple(after[:max_results]), self.feed[-1].seq if self.feed else 0,
                             len(after) > max_results)


class Sink:
    """The database side: only its cursor may be read; applying anything is the follower's work."""

    def __init__(self, cursor: int) -> None:
        self.position = cursor

    def cursor(self, name: str) -> int:
        return self.position

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"catch_up must not call {name}")


def _feed(count: int) -> list[PersonMutation]:
    """``count`` mutations, each about its own person; the last two a death and a NISS change."""
    feed = [PersonMutation(seq, "Deceased", f"p{seq}", DAY) for seq in range(1, count - 1)]
    return [*feed, PersonMutation(count - 1, "Deceased", "dead", DAY),
            PersonMutation(count, "SsinReplaced", "old", DAY, "new")]


def test_catch_up_reads_every_page_from_the_cursor_and_forgets_who_it_names() -> None:
    register = Register(_feed(250))
    cache = CachingNationalRegister(register, ttl=3600)  # type: ignore[arg-type]  # duck-typed register
    for ssin in ("dead", "old", "new", "alive"):
        cache.person(ssin)
    sync = MutationSync(cache, Sink(cursor=20), batch=100)

    assert sync.catch_up(None) == 250
    assert register.reads == [20, 120, 220]  # from the database's cursor, page after page
    for ssin in ("dead", "old", "new", "alive"):
        cache.person(ssin)
    assert register.lookups == {"dead": 2, "old": 2, "new": 2, "alive": 1}  # forgotten, asked again; kept

    assert sync.catch_up(250) == 250  # nothing new: the same place, one read
    assert register.reads[-1] == 250


def test_catch_up_goes_on_from_where_it_was_not_from_the_cursor() -> None:
    register = Register(_feed(10))
    sync = MutationSync(CachingNationalRegister(register, ttl=3600), Sink(cursor=0))  # type: ignore[arg-type]
    assert sync.catch_up(7) == 10
    assert register.reads == [7]
    register.feed.append(PersonMutation(11, "Deceased", "later", DAY))
    assert sync.catch_up(10) == 11
