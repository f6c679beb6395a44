"""Per-batch progress in the run's log (shown on the console too, as plain lines): rows, rows/s, ETA.

A line comes every PROGRESS_EVERY seconds from a background thread, so a long model call or a
slow machine never leaves the log silent, and once more when the batch is done; the counts it
shows move at least every few hundred rows (see `jobs.batches.stage.PROGRESS_ROWS`).

A watcher in the same process (`watching`: `calscore score` drawing a bar on a terminal, see
calscore.cli.progress) gets every count as it comes; the lines carry PROGRESS_LINE, so a console
showing the bar can leave them to the Prefect UI. Scoring tasks on Ray workers have no watcher.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

PROGRESS_EVERY = 10.0  # seconds
PROGRESS_LINE = "calscore_progress"  # set (True) on the log records of progress lines
_watchers: list[Callable[..., None]] = []


@contextmanager
def watching(callback: Callable[..., None]) -> Iterator[None]:
    """While inside, `callback(key, done, total)` gets every batch's counts in this process as they move, and
    `callback(key, done, total, ended=True)` once when the batch's scoring ends (done, failed or stopped)."""
    _watchers.append(callback)
    try:
        yield
    finally:
        _watchers.remove(callback)


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
        logger.info("batch %s: %d/%d rows, %.1f rows/s, ETA %s", key, counts["done"], counts["total"], rate, _eta(eta),
                    extra={PROGRESS_LINE: True})

    def tell(**ended: bool) -> None:
        for watcher in list(_watchers):
            try:
                watcher(key, counts["done"], counts["total"], **ended)
            except Exception:  # noqa: BLE001 - a display that fails never fails the batch
                pass

    def tick() -> None:
        while not stop.wait(PROGRESS_EVERY):
            report()

    def update(done: int, total: int) -> None:
        counts.update(done=done, total=total)
        tell()

    ticker = threading.Thread(target=tick, name=f"progress-{key}", daemon=True)
    ticker.start()
    try:
        yield update
    finally:
        stop.set()
        ticker.join()
        tell(ended=True)
    report()
