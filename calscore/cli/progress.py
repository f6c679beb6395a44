"""Progress of a scoring run on the console: a bar when a person watches a terminal, plain lines otherwise.

`calscore score` and `rescore` choose by whether stderr is a terminal (`isatty`). On a terminal, a rich
bar per batch being scored (rows done/total, rows/s, elapsed, ETA; the bar of `score-file`,
jobs.scoring.score_file.rows_progress) stays below the run's log lines, and the periodic progress
lines stay off the console (they still reach the Prefect UI). Anywhere else (a pipe, a file, cron,
systemd), the plain lines every 10 s of flows.progress, as before. Batches scored on Ray workers
report no counts to this process: there, the lines in the Prefect UI are the progress.
"""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Iterator, TextIO


def interactive(stream: TextIO | None = None) -> bool:
    """Whether `stream` (default: stderr) is a terminal a person watches."""
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def _prefect_consoles() -> list:
    """Prefect's console log handlers (on the root logger once Prefect has set its logging up)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    return [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]


def _not_a_progress_line(record: logging.LogRecord) -> bool:
    from calscore.flows.progress import PROGRESS_LINE

    return not getattr(record, PROGRESS_LINE, False)


@contextmanager
def scoring_progress(stream: TextIO | None = None) -> Iterator[bool]:
    """While inside: a progress bar on `stream` (default stderr) if it is a terminal, else nothing changes (the
    plain lines). Yields whether the bar is shown."""
    if not interactive(stream):
        yield False
        return
    from rich.console import Console
    from rich.default_styles import DEFAULT_STYLES
    from rich.theme import Theme

    from calscore.flows.progress import watching
    from calscore.jobs.scoring.score_file import rows_progress

    consoles = _prefect_consoles()
    # on stderr, the bar goes on the console Prefect logs to there: its lines print above the bar instead of
    # through it; a stream given by the caller gets a console of its own
    console = consoles[0].console if consoles and stream is None else Console(file=stream or sys.stderr)
    # Prefect's console has its own styles only: lend it rich's styles of a progress bar while it shows one
    console.push_theme(Theme({name: style for name, style in DEFAULT_STYLES.items()
                              if name.startswith(("bar.", "progress."))}))
    bar = rows_progress(console=console)
    batches: dict[str, int] = {}

    def show(key: str, done: int, total: int | None, ended: bool = False) -> None:
        if ended:  # the run's log says how the batch ended
            if key in batches:
                bar.remove_task(batches.pop(key))
            return
        if total is None:
            return
        if key not in batches:
            batches[key] = bar.add_task(key, total=total)
        bar.update(batches[key], completed=done, total=total)

    for handler in consoles:
        handler.addFilter(_not_a_progress_line)
    try:
        with bar, watching(show):
            yield True
    finally:
        for handler in consoles:
            handler.removeFilter(_not_a_progress_line)
        console.pop_theme()
