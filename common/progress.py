"""Progress of a grid of runs: after each run, runs done / total, skipped, failed, and the time left."""
from __future__ import annotations

import time

# Outcomes that trained nothing: they take no time and say nothing about how long a run takes.
NOT_TRAINED = ("skipped", "reused")


class Progress:
    """One line per finished run of a grid, the same for every engine. Time left = runs still to train x the mean
    wall time per trained run so far (wall time of the grid since it started, so that runs in parallel, under Ray,
    count as they overlap); runs that were skipped or reused cost nothing and are not counted in it."""

    def __init__(self, total: int, label: str = "runs", clock=time.monotonic):
        self.total, self.label, self.clock = total, label, clock
        self.counts = {"completed": 0, "skipped": 0, "reused": 0, "failed": 0, "interrupted": 0}
        self.start = clock()
        self.trained_wall = 0.0  # wall time spent while runs trained (skips excluded)
        self.last = self.start

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def update(self, outcome: str) -> str:
        """Count one finished run; return its progress line."""
        now = self.clock()
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if outcome not in NOT_TRAINED:
            self.trained_wall += now - self.last
        self.last = now
        return self.line()

    def seconds_left(self):
        """None until one run has trained (a skip or reuse says nothing about the time a run takes)."""
        trained = self.done - sum(self.counts[o] for o in NOT_TRAINED)
        if trained == 0:
            return None
        return self.trained_wall / trained * (self.total - self.done)

    def line(self) -> str:
        c = self.counts
        left = self.seconds_left()
        eta = "all done" if self.done >= self.total else \
            "time left unknown until a run has trained" if left is None else f"about {_duration(left)} left"
        extra = "".join(f", {c[k]} {k}" for k in ("reused", "interrupted") if c.get(k))
        return (f"[progress] {self.done}/{self.total} {self.label} done ({c['skipped']} skipped, {c['failed']} "
                f"failed{extra}), {_duration(self.clock() - self.start)} so far, {eta}")


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
