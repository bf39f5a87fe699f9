"""Progress a person can read: a bar with the work done, the rate and the time left, printed as
lines (so it reads the same in a terminal, a CI log and the nightly's JSON log).

    meter = Meter(echo, "function vectors", total=540, unit="passes")
    meter.advance(12)   # prints at most every few seconds, and always at the end
"""

from __future__ import annotations

import time
from collections.abc import Callable

BAR_WIDTH = 20
EVERY_SECONDS = 5.0


def clock_text(seconds: float) -> str:
    """``1:02:03`` or ``2:03``: a duration for a person."""
    whole = max(int(round(seconds)), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def bar_line(label: str, done: float, total: float, unit: str, elapsed: float) -> str:
    """``label [#####...............] 25% 135/540 passes, 3.1 passes/s, 2:10 left``."""
    share = min(done / total, 1.0) if total > 0 else 1.0
    filled = int(share * BAR_WIDTH)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    line = f"{label} [{bar}] {share:4.0%} {done:,.0f}/{total:,.0f} {unit}"
    if done > 0 and elapsed > 0:
        rate = done / elapsed
        line += f", {rate:,.1f} {unit}/s" if rate < 100 else f", {rate:,.0f} {unit}/s"
        line += (
            ", done in " + clock_text(elapsed)
            if done >= total
            else f", {clock_text((total - done) / rate)} left"
        )
    return line


class Meter:
    """Counts work toward a known total and prints a bar line now and then: at the first step,
    at most every ``every`` seconds after, and when the total is reached."""

    def __init__(
        self, echo: Callable[[str], None], label: str, total: float, unit: str, *,
        every: float = EVERY_SECONDS, clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.echo, self.label, self.total, self.unit = echo, label, total, unit
        self.every, self.clock = every, clock
        self.done = 0.0
        self.started = clock()
        self.printed: float | None = None

    def advance(self, amount: float = 1) -> None:
        """Count ``amount`` more done; print when due."""
        self.done += amount
        now = self.clock()
        if self.printed is None or now - self.printed >= self.every or self.done >= self.total:
            self.printed = now
            self.echo(self.line())

    def line(self) -> str:
        """The bar as it stands."""
        return bar_line(self.label, self.done, self.total, self.unit, self.clock() - self.started)


def weighted_line(
    label: str, done: int, total: int, done_cost: float, total_cost: float, elapsed: float
) -> str:
    """``label [#####.....] 40% 4/12 units, 2:10 elapsed, about 3:15 left``: steps of unequal
    size, the time left estimated from each step's expected ``cost`` (a share, any scale)."""
    share = min(done_cost / total_cost, 1.0) if total_cost > 0 else 1.0
    filled = int(share * BAR_WIDTH)
    line = f"{label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share:4.0%} {done}/{total} units"
    line += f", {clock_text(elapsed)} elapsed"
    if 0 < done_cost < total_cost:
        line += f", about {clock_text(elapsed * (total_cost - done_cost) / done_cost)} left"
    return line
