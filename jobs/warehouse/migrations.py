"""The warehouse schema: numbered migrations (`sql/migrations/NNN_*.sql`) and the stored analyst views.

Each migration runs once, in its own transaction, recorded in `schema_migrations`;
the views are re-created only when the shipped view files changed.
"""
from __future__ import annotations

import hashlib
from importlib import resources

import duckdb

from calscore.jobs.common.clock import utcnow
from calscore.jobs.warehouse.views import create_views, views


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
            con.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", [number, name, utcnow()])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def ensure_views(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the analyst views when the shipped view files changed, so any DuckDB
    client sees them; a no-op on every other open."""
    digest = hashlib.sha256(repr(sorted(views().items())).encode()).hexdigest()
    con.execute("CREATE TABLE IF NOT EXISTS schema_views (hash VARCHAR NOT NULL)")
    if con.execute("SELECT count(*) FROM schema_views WHERE hash = ?", [digest]).fetchall()[0][0]:
        return
    con.execute("BEGIN TRANSACTION")
    try:
        create_views(con)
        con.execute("DELETE FROM schema_views")
        con.execute("INSERT INTO schema_views (hash) VALUES (?)", [digest])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


