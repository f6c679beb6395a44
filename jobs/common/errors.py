"""The base of every error calscore raises on purpose.

Such an error carries a message that says what is wrong, where, and what to do. The
command line shows it as one line with a non-zero exit (a traceback only with --debug),
and a flow returns it as its failed state's message instead of logging a traceback:
tracebacks are for bugs.
"""
from __future__ import annotations


class CalscoreError(Exception):
    """An expected failure with a clear message (bad input, a busy resource, a refused action)."""
