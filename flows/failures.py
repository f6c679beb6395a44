"""Expected failures end a flow or task as a clean Failed state, not a traceback.

An error calscore raises on purpose (`CalscoreError`: a locked run, a bad label file,
a missing input folder; a tampered calibrator document) becomes the run's Failed
state with the error's message; calling the flow directly raises that same error, so
the command line prints one line. Anything else is a bug and keeps Prefect's traceback.

Prefect also logs a failed run's exception with its traceback on the way out (in a
served worker: "Engine execution exited with unexpected exception"), and logs failed
states returned by tasks with an empty traceback ("NoneType: None").
`ExpectedErrorsWithoutTracebacks`, installed on Prefect's log handlers when the flows
are imported, keeps those records as one line.
"""
from __future__ import annotations

import functools
import inspect
import logging
from typing import Callable, TypeVar

from prefect.states import Failed

from calscore.calibration_store.document import DocumentError
from calscore.jobs.batches.files import one_line
from calscore.jobs.common.errors import CalscoreError

EXPECTED = (CalscoreError, DocumentError)
F = TypeVar("F", bound=Callable)


def batches_failed_message(failed: list[dict], written: int) -> str:
    """One line: how many batches failed and were written, and each failure's reason."""
    return f"{len(failed)} batch(es) failed, {written} written: " + "; ".join(f["error"] for f in failed)


class BatchesFailed(CalscoreError):
    """A run wrote every good batch, but some batches failed; `summary` is the run's summary."""

    def __init__(self, summary: dict):
        super().__init__(batches_failed_message(summary["batches_failed"], summary["batches_done"]))
        self.summary = summary


class ExpectedErrorsWithoutTracebacks(logging.Filter):
    """Log records about expected errors keep their message and lose the traceback (bugs keep theirs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            error = record.exc_info[1]
            if error is None or isinstance(error, EXPECTED):
                record.msg = f"{record.getMessage()}" + (f": {error}" if error is not None else "")
                record.args = ()
                record.exc_info = None
                record.exc_text = None
        return True


def quiet_expected_tracebacks() -> None:
    """Install the filter on the handlers of Prefect's loggers (console and API)."""
    keep = ExpectedErrorsWithoutTracebacks()
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", ""):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, ExpectedErrorsWithoutTracebacks) for f in handler.filters):
                handler.addFilter(keep)


def fails_cleanly(fn: F) -> F:
    """Wrap a flow or task function: an expected error becomes Failed(message, data=error)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EXPECTED as exc:
            # one line: Prefect logs a state with repr(), where a line break reads as a literal \n
            return Failed(message=one_line(str(exc)), data=exc)

    # Prefect validates parameters from the signature; resolve its annotations where `fn` was written.
    wrapper.__signature__ = inspect.signature(fn, eval_str=True)
    return wrapper


quiet_expected_tracebacks()  # served workers import the flows: this is their only hook
