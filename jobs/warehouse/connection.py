"""The DuckDB warehouse: connections that respect DuckDB's file lock, and migrations.

DuckDB lets one process hold a file read-write and then locks out every other
process -- and while any process holds it read-only, no process can open it
read-write. So calscore opens the file only for the seconds it needs, and every
open (read or write) waits with the same policy while someone else holds it: up to
WAIT_SECONDS, saying after 2 s and then every 10 s who holds it (DuckDB names the pid)
and how long it has waited, then failing with WarehouseBusy (nothing is lost).
"""
from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import duckdb

from calscore.jobs.common.errors import CalscoreError
from calscore.jobs.common.retry import retry_until_deadline
from calscore.jobs.warehouse.migrations import ensure_views, migrate, migration_files

if TYPE_CHECKING:
    from calscore.jobs.spec import TaskSpec

log = logging.getLogger(__name__)
WAIT_SECONDS = 120.0
# The storage format of a new warehouse: the newest that the DuckDB CLI on PyPI reads (duckdb-cli 1.5.6 reads
# formats up to DuckDB 1.5's; the Python package, 2.x, would otherwise write its own, which that CLI refuses).
STORAGE_VERSION = "v1.5.0"


class WarehouseError(CalscoreError, RuntimeError):
    """The warehouse cannot be used right now; the message says why and what to do."""


class WarehouseBusy(WarehouseError):
    """Another process held the warehouse file for longer than we were willing to wait."""


class WarehouseOutdated(WarehouseError):
    """A read-only session found a schema older than this calscore's migrations."""


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return isinstance(exc, duckdb.IOException) and ("lock" in text or "conflicting" in text)


def holder(exc: Exception) -> str:
    """Who holds the file, from DuckDB's lock error ("... held in /usr/bin/python3 (PID 4242) ...")."""
    found = re.search(r"held in (.+?) \(PID (\d+)\)", str(exc))
    return f"pid {found.group(2)} ({found.group(1)})" if found else "another process"


def _connect_waiting(path: Path, read_only: bool, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    def say(exc: Exception, waited: float) -> None:
        log.warning("waiting for %s: held by %s (read-only sessions block writers too); waited %.0f s, "
                    "giving up after %.0f s", path, holder(exc), waited, wait_seconds)

    # a new file is written in a storage format the DuckDB CLI analysts can install reads (it persists: later
    # writes keep the file's format)
    config = {} if read_only or path.exists() else {"storage_compatibility_version": STORAGE_VERSION}
    try:
        con = retry_until_deadline(lambda: duckdb.connect(str(path), read_only=read_only, config=config),
                                   _is_lock_error, wait_seconds, on_wait=say)
        con.execute("SET enable_progress_bar = false")  # DuckDB's own bar on a long statement garbles run logs
        return con
    except duckdb.IOException as exc:
        if _is_lock_error(exc):
            raise WarehouseBusy(
                f"{path} is held by {holder(exc)} (an open analyst session or a running job); "
                f"gave up after {wait_seconds:.0f} s. Close it and re-run: nothing was lost."
            ) from exc
        raise


def check_opens(spec: TaskSpec) -> TaskSpec:
    """An existing warehouse file opens as a DuckDB database, checked before any flow starts (one another
    process holds is busy, not broken); SpecError names the field, with DuckDB's reason."""
    from calscore.jobs.spec import SpecError  # here: this module stays light (a signal's supervisor imports it)

    path = Path(spec.warehouse.path)
    if path.is_file():
        try:
            duckdb.connect(str(path), read_only=True).close()
        except duckdb.Error as exc:
            if not _is_lock_error(exc):
                raise SpecError(f"{spec.source_path}: warehouse.path: {path} cannot be opened: {exc}") from None
    return spec


@contextmanager
def writer(path: Path, wait_seconds: float = WAIT_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-write connection with the schema and views up to date; closed on exit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect_waiting(path, read_only=False, wait_seconds=wait_seconds)
    try:
        migrate(con)
        ensure_views(con)
        yield con
    finally:
        con.close()


def _check_current(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Readers cannot migrate; say so plainly instead of failing on a missing table."""
    latest = migration_files()[-1][0]
    have = con.execute("SELECT max(version) FROM schema_migrations").fetchall()[0][0]
    if have is None or have < latest:
        raise WarehouseOutdated(
            f"{path} has schema version {have}, this calscore needs {latest}: "
            "run `calscore init --task ...` (or any scoring run) to migrate it"
        )


@contextmanager
def reader(path: Path, wait_seconds: float = WAIT_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection (fails clearly if the warehouse does not exist yet)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}: run `calscore init --task ...` or a scoring run first")
    con = _connect_waiting(path, read_only=True, wait_seconds=wait_seconds)
    try:
        _check_current(con, path)
        yield con
    finally:
        con.close()
