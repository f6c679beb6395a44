"""Waiting for something busy with one policy: retry on named errors until a deadline.

Used wherever calscore waits on another process (a DuckDB file another process
holds, a run lock another run holds), so every wait backs off the same way and
ends with the last error when the deadline passes.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


SAY_AFTER = 2.0  # seconds: a wait shorter than this says nothing (calscore's own short opens overlap)
SAY_EVERY = 10.0


def retry_until_deadline(
    attempt: Callable[[], T],
    retry_on: Callable[[Exception], bool],
    wait_seconds: float,
    *,
    first_delay: float = 0.05,
    max_delay: float = 1.0,
    on_wait: Callable[[Exception, float], None] | None = None,
) -> T:
    """Call `attempt` until it returns; retry while `retry_on(error)` holds and `wait_seconds` have not passed.

    Delays double from `first_delay` up to `max_delay`. `on_wait(error, waited_seconds)` says what is waited
    for: first after SAY_AFTER seconds, then every SAY_EVERY seconds (a sleep ends in time for it). The error
    of the last attempt is raised once the deadline has passed.
    """
    started = time.monotonic()
    delay = first_delay
    say_at = SAY_AFTER if on_wait is not None else float("inf")
    while True:
        try:
            return attempt()
        except Exception as exc:
            waited = time.monotonic() - started
            if not retry_on(exc) or waited >= wait_seconds:
                raise
            if waited >= say_at:
                on_wait(exc, waited)
                say_at = waited + SAY_EVERY
            time.sleep(max(min(delay, wait_seconds - waited, say_at - waited), 0.01))
            delay = min(delay * 2, max_delay)
