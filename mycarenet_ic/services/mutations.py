"""Following the National Register's mutation feed: a NISS change moves the patient's inclusions to
the new NISS; a death closes the open ones at the date of death.

The feed is read from a cursor kept in the database. Each mutation is applied in the same
transaction that moves the cursor past it, and only if the cursor is still where this reader
found it, so nothing is missed or applied twice, however many readers run at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from mycarenet_ic.services.ports import MutationSink, NationalRegister

CURSOR = "nr-mutations"


@dataclass
class SyncReport:
    applied: int = 0
    ssin_changes: int = 0
    deaths: int = 0
    inclusions_touched: int = 0
    position: int = 0


class MutationSync:
    def __init__(self, national_register: NationalRegister, sink: MutationSink, batch: int = 100) -> None:
        self.nr = national_register
        self.sink = sink
        self.batch = batch

    def run(self) -> SyncReport:
        """Apply every mutation after the cursor; return what was done."""
        report = SyncReport(position=self.sink.cursor(CURSOR))
        while True:
            batch = self.nr.mutations_after(report.position, self.batch)
            for m in batch.mutations:
                if m.kind == "SsinReplaced" and m.new_ssin:
                    done = self.sink.apply_ssin_change(CURSOR, m.seq, report.position, m.ssin, m.new_ssin)
                    report.ssin_changes += done is not None
                elif m.kind == "Deceased":
                    done = self.sink.apply_death(CURSOR, m.seq, report.position, m.ssin, m.date)
                    report.deaths += done is not None
                else:
                    done = 0 if self.sink.skip(CURSOR, m.seq, report.position) else None
                if done is None:
                    # Another reader moved the cursor: start again from where it is now.
                    report.position = self.sink.cursor(CURSOR)
                    break
                report.applied += 1
                report.inclusions_touched += done
                report.position = m.seq
            else:
                if not batch.more:
                    return report

    def catch_up(self, position: int | None) -> int:
        """Read the feed after ``position`` (the cursor when None) without applying anything; return where
        it ends. A process that does not follow the feed calls this so that its National Register cache
        forgets the persons the feed names (the caching gateway forgets them as it reads) as soon as the
        follower's process does, instead of answering from an outdated identity until the cache expires."""
        if position is None:
            position = self.sink.cursor(CURSOR)
        while True:
            batch = self.nr.mutations_after(position, self.batch)
            if not batch.mutations:
                return position
            position = max(position, *(m.seq for m in batch.mutations))
            if not batch.more:
                return position
