"""Per-batch progress in the run's log (shown on the console too): rows, rows/s, ETA."""
from __future__ import annotations

import time
from typing import Callable


def batch_progress(logger, key: str, every_seconds: float = 10.0) -> Callable[[int, int], None]:
    """An `on_chunk(rows_read, rows_total)` callback that logs at most every `every_seconds`, and at the end."""
    started = time.monotonic()
    last = [started]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < every_seconds and done < total:
            return
        last[0] = now
        rate = done / max(now - started, 1e-9)
        eta = (total - done) / rate if rate > 0 else float("inf")
        logger.info("batch %s: %d/%d rows, %.1f rows/s, ETA %s", key, done, total, rate,
                    "-" if eta == float("inf") else time.strftime("%H:%M:%S", time.gmtime(eta)))

    return report
