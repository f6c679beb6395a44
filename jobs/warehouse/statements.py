"""The warehouse's own SQL statements (`sql/statements/*.sql`), loaded by name.

Real SQL (joins, subqueries, grouping or ordering, upserts, every INSERT) lives in
files an analyst can read and a test can check; only statements on one table with
at most a WHERE stay inline in Python. Values are always bound as `$name`
parameters, never formatted into the text. Each file starts with a one-line
`--` comment saying what the statement does.
"""
from __future__ import annotations

from functools import cache
from importlib import resources

_FOLDER = "statements"


@cache
def statement(name: str) -> str:
    """The SQL of sql/statements/<name>.sql (read once per process)."""
    path = resources.files("calscore.sql") / _FOLDER / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"sql/{_FOLDER}/{name}.sql: no such statement file")
    return path.read_text(encoding="utf-8").strip()
