"""Named positions in a feed (the National Register's mutations, the insurer export's events), kept in
``feed_cursor``. A cursor moves only from the position its reader found, so two readers cannot both
take the same step; the mutation sink moves it inside the transaction that applies the step."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from mycarenet_ic.persistence.db import reading
from mycarenet_ic.persistence.tables import feed_cursor


def advance(conn: Connection, name: str, expected: int, position: int) -> bool:
    """Move the cursor from ``expected`` to ``position``; False if someone else moved it first."""
    if expected == 0:
        exists = conn.execute(select(feed_cursor.c.position).where(feed_cursor.c.name == name)
                              .with_for_update()).scalar()
        if exists is None:
            conn.execute(insert(feed_cursor).values(name=name, position=position))
            return True
    done = conn.execute(update(feed_cursor).where(feed_cursor.c.name == name, feed_cursor.c.position == expected)
                        .values(position=position))
    return done.rowcount == 1


class SqlFeedCursors:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def cursor(self, name: str) -> int:
        with reading(self.engine) as conn:
            pos = conn.execute(select(feed_cursor.c.position).where(feed_cursor.c.name == name)).scalar()
        return int(pos or 0)

    def move_cursor(self, name: str, expected: int, position: int) -> bool:
        with self.engine.begin() as conn:
            return advance(conn, name, expected, position)
