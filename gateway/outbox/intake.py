"""The outbox thread's queue of jobs, and how it takes them for one transaction."""

from __future__ import annotations

import queue
import time
from typing import Any


class Jobs:
    """New rows, calls, wake-ups and the stop (None), in the order they came."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def put(self, job: Any) -> None:
        self._queue.put(job)

    def empty(self) -> bool:
        return self._queue.empty()

    def take(self, timeout: float | None) -> list[Any]:
        """The next job (waiting up to ``timeout``) and everything already behind it."""
        try:
            jobs = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:  # take everything already waiting: one transaction for all rows
            try:
                jobs.append(self._queue.get_nowait())
            except queue.Empty:
                return jobs

    def take_for(self, seconds: float) -> list[Any]:
        """Every job that comes within ``seconds`` (the commit window), or until a stop."""
        jobs: list[Any] = []
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0 and None not in jobs:
            jobs += self.take(left)
        return jobs

    def gather(self, window: float, gap: float) -> list[Any]:
        """The jobs that keep coming: until a pause of ``gap``, a stop, or ``window``."""
        jobs: list[Any] = []
        end = time.monotonic() + window
        while None not in jobs and (left := end - time.monotonic()) > 0:
            more = self.take(min(left, gap))
            if not more:
                break
            jobs += more
        return jobs
