"""A call that must answer within a deadline, for remote systems whose clients retry for minutes on their own
(pyarrow's S3 client took 99 s to give up on an endpoint that accepts connections and never answers, and sets no
read timeout on Linux)."""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")


def within(seconds: float, call: Callable[[], T]) -> T:
    """`call()`'s result or exception, or TimeoutError when it has not returned after `seconds`. The call runs on a
    daemon thread, so one that never returns is left behind without holding the process open."""
    outcome: dict = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="deadline", daemon=True).start()
    if not done.wait(seconds):
        raise TimeoutError(f"no answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
