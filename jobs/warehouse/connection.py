"""The DuckDB warehouse: connections that respect DuckDB's file lock, and migrations.

DuckDB lets one process hold a file read-write and then locks out every other
process, readers included. So writers open the file only while they write
(seconds) and wait with a deadline while someone else holds it; readers open it
read-only and retry briefly.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from calscore.jobs.common.retry import retry_until_deadline
from calscore.jobs.warehouse.migrations import ensure_views, migrate, migration_files

WRITE_WAIT_SECONDS = 120.0
READ_WAIT_SECONDS = 10.0


class WarehouseError(RuntimeError):
    """The warehouse cannot be used right now; the message says why and what to do."""


class WarehouseBusy(WarehouseError):
    """Another process held the warehouse file for longer than we were willing to wait."""


class WarehouseOutdated(WarehouseError):
    """A read-only session found a schema older than this calscore's migrations."""


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return isinstance(exc, duckdb.IOException) and ("lock" in text or "conflicting" in text)


def _connect_waiting(path: Path, read_only: bool, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    try:
        return retry_until_deadline(lambda: duckdb.connect(str(path), read_only=read_only), _is_lock_error, wait_seconds)
    except duckdb.IOException as exc:
        if _is_lock_error(exc):
            raise WarehouseBusy(
                f"{path} is held by another process (an open analyst session or a running job); "
                f"gave up after {wait_seconds:.0f} s. Close it and re-run: nothing was lost."
            ) from exc
        raise


@contextmanager
def writer(path: Path, wait_seconds: float = WRITE_WAIT_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
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
def reader(path: Path, wait_seconds: float = READ_WAIT_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
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
