"""Per-batch progress in the run's log (shown on the console too, as plain lines): rows, rows/s, ETA.

A line comes every PROGRESS_EVERY seconds from a background thread, so a long model call or a
slow machine never leaves the log silent, and once more when the batch is done; the counts it
shows move at least every few hundred rows (see `jobs.batches.stage.PROGRESS_ROWS`).
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

PROGRESS_EVERY = 10.0  # seconds


def _eta(seconds: float) -> str:
    return "-" if seconds == float("inf") else time.strftime("%H:%M:%S", time.gmtime(seconds))


@contextmanager
def batch_progress(logger, key: str) -> Iterator[Callable[[int, int], None]]:
    """Yield an `on_chunk(rows_done, rows_total)` callback; log the latest counts every PROGRESS_EVERY seconds
    while inside, and at the end."""
    started = time.monotonic()
    counts = {"done": 0, "total": None}
    stop = threading.Event()

    def report() -> None:
        if counts["total"] is None:  # the batch's footer not read yet
            return
        rate = counts["done"] / max(time.monotonic() - started, 1e-9)
        eta = (counts["total"] - counts["done"]) / rate if rate > 0 else float("inf")
        logger.info("batch %s: %d/%d rows, %.1f rows/s, ETA %s", key, counts["done"], counts["total"], rate, _eta(eta))

    def tick() -> None:
        while not stop.wait(PROGRESS_EVERY):
            report()

    def update(done: int, total: int) -> None:
        counts.update(done=done, total=total)

    ticker = threading.Thread(target=tick, name=f"progress-{key}", daemon=True)
    ticker.start()
    try:
        yield update
    finally:
        stop.set()
        ticker.join()
    report()
