"""The DuckDB warehouse: connections that respect DuckDB's file lock, and migrations.

DuckDB lets one process hold a file read-write and then locks out every other
process, readers included. So writers open the file only while they write
(seconds) and wait with a deadline while someone else holds it; readers open it
read-only and retry briefly.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Iterator

import duckdb

WRITE_WAIT_SECONDS = 120.0
READ_WAIT_SECONDS = 10.0


class WarehouseError(RuntimeError):
    """The warehouse cannot be used right now; the message says why and what to do."""


class WarehouseBusy(WarehouseError):
    """Another process held the warehouse file for longer than we were willing to wait."""


class WarehouseOutdated(WarehouseError):
    """A read-only session found a schema older than this calscore's migrations."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text


def _connect_waiting(path: Path, read_only: bool, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if not _is_lock_error(exc) or time.monotonic() >= deadline:
                if _is_lock_error(exc):
                    raise WarehouseBusy(
                        f"{path} is held by another process (an open analyst session or a running job); "
                        f"gave up after {wait_seconds:.0f} s. Close it and re-run: nothing was lost."
                    ) from exc
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def migration_files() -> list[tuple[int, str, str]]:
    """(number, name, sql) of every migration shipped with the package, in order."""
    folder = resources.files("calscore.sql") / "migrations"
    out = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            out.append((number, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(out)


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply pending migrations in order, each in its own transaction; return their names."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    done = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for number, name, sql in migration_files():
        if number in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [number, name, utcnow()])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def ensure_views(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the analyst views when the shipped view files changed, so any DuckDB
    client sees them; a no-op on every other open."""
    import hashlib

    from calscore.jobs.warehouse.views import create_views, view_files

    digest = hashlib.sha256(repr(sorted(view_files().items())).encode()).hexdigest()
    con.execute("CREATE TABLE IF NOT EXISTS schema_views (hash VARCHAR NOT NULL)")
    if con.execute("SELECT count(*) FROM schema_views WHERE hash = ?", [digest]).fetchall()[0][0]:
        return
    con.execute("BEGIN TRANSACTION")
    try:
        create_views(con)
        con.execute("DELETE FROM schema_views")
        con.execute("INSERT INTO schema_views VALUES (?)", [digest])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
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
