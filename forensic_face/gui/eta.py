"""Time left of a job, from the throughput measured so far (no guesses before there is a measurement)."""

from __future__ import annotations

import time
from collections.abc import Callable


class TimeLeft:
    """Feed it ``(done, total)``; :meth:`seconds_left` is the remaining work at the rate measured since the
    current stage began (a new ``total`` starts a stage), once at least ``min_elapsed_s`` have passed.

    >>> clock = iter([0.0, 10.0, 20.0]).__next__
    >>> eta = TimeLeft(clock=clock)
    >>> eta.update(0, 100), eta.update(10, 100), eta.update(30, 100)
    (None, 90.0, 46.7)
    """

    def __init__(self, min_elapsed_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_elapsed_s = min_elapsed_s
        self.clock = clock
        self._total = -1
        self._start_t = 0.0
        self._start_done = 0

    def update(self, done: int, total: int) -> float | None:
        now = self.clock()
        if total != self._total or done < self._start_done:
            self._total, self._start_t, self._start_done = total, now, done
            return None
        elapsed = now - self._start_t
        progressed = done - self._start_done
        if elapsed < self.min_elapsed_s or progressed <= 0 or total <= 0:
            return None
        return round((total - done) * elapsed / progressed, 1)


def format_time_left(seconds: float | None) -> str:
    """``"about 3 min left"``; empty before there is an estimate.

    >>> format_time_left(None), format_time_left(42), format_time_left(190), format_time_left(7300)
    ('', 'about 42 s left', 'about 3 min left', 'about 2 h 2 min left')
    """
    if seconds is None:
        return ""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s left"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min left"
    return f"about {int(seconds // 3600)} h {round(seconds % 3600 / 60)} min left"
