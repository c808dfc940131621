"""The outbox thread's queue of jobs, and how it takes them for one transaction."""

from __future__ import annotations

import queue
import time
from typing import Any

MOST = 256
"""Jobs one transaction takes at most: after a slow commit (a checkpoint, a busy
disk) the rows that came meanwhile go in several commits, and delivery gets the
first of them while the rest are written, instead of all of them at once."""


class Jobs:
    """New rows, calls, wake-ups and the stop (None), in the order they came."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def put(self, job: Any) -> None:
        self._queue.put(job)

    def empty(self) -> bool:
        return self._queue.empty()

    def take(self, timeout: float | None, most: int = MOST) -> list[Any]:
        """The next job (waiting up to ``timeout``) and what is already behind it,
        ``most`` in all: one transaction for all rows."""
        try:
            jobs = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(jobs) < most:
            try:
                jobs.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return jobs

    def take_for(self, seconds: float, most: int = MOST) -> list[Any]:
        """Every job that comes within ``seconds`` (the commit window), until a stop
        or ``most`` jobs."""
        jobs: list[Any] = []
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0 and None not in jobs and len(jobs) < most:
            jobs += self.take(left, most - len(jobs))
        return jobs

    def gather(self, window: float, gap: float, most: int = MOST) -> list[Any]:
        """The jobs that keep coming: until a pause of ``gap``, a stop, ``window``,
        or ``most`` jobs."""
        jobs: list[Any] = []
        end = time.monotonic() + window
        while None not in jobs and (left := end - time.monotonic()) > 0 and len(jobs) < most:
            more = self.take(min(left, gap), most - len(jobs))
            if not more:
                break
            jobs += more
        return jobs
