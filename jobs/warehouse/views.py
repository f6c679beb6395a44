"""Analyst views (`sql/views/*.sql`, one view per file, named by the file) and example queries (`sql/queries/*.sql`).

A view file holds one SELECT; `create_views` wraps it in CREATE OR REPLACE VIEW,
creating views another view reads first. On a read-write connection the views
are stored in the warehouse (so `duckdb -readonly file < sql/queries/x.sql`
works); on a read-only one, pass `temporary=True`: they then live only in that
session, which is how the reports use them without ever locking the file.
"""
from __future__ import annotations

import re
from graphlib import CycleError, TopologicalSorter
from importlib import resources

import duckdb


def _sql_files(folder: str) -> dict[str, str]:
    root = resources.files("calscore.sql") / folder
    files = {
        entry.name.removesuffix(".sql"): entry.read_text(encoding="utf-8")
        for entry in root.iterdir()
        if entry.name.endswith(".sql")
    }
    return dict(sorted(files.items()))


def view_files() -> dict[str, str]:
    """{view name: its SELECT} for every file in sql/views/, by name."""
    return {name: _strip(sql) for name, sql in _sql_files("views").items()}


# Views with a twin over the labeled rows' copy (table labeled_predictions, migration 016): the same SQL with
# `predictions` read from the copy, named labeled_<view>. `where is_labeled` on predictions_current reads every
# column it needs of every prediction (2% labeled leave no vector unread); on labeled_predictions_current, of the
# labeled rows only.
LABELED_TWINS = ("decided_predictions", "predictions_current")


def _labeled_twin(sql: str) -> str:
    for name in ("predictions", *LABELED_TWINS):
        sql = re.sub(rf"\b{name}\b", f"labeled_{name}", sql)
    return sql


def views() -> dict[str, str]:
    """{view name: its SELECT}: every view file and the labeled twins (LABELED_TWINS)."""
    files = view_files()
    return {**files, **{f"labeled_{name}": _labeled_twin(files[name]) for name in LABELED_TWINS}}


def query_files() -> dict[str, str]:
    """{query name: its SQL} for every file in sql/queries/, by name."""
    return _sql_files("queries")


def question(sql: str) -> str:
    """The one-line comment a view or query file starts with: the question it answers."""
    first = sql.lstrip().splitlines()[0] if sql.strip() else ""
    return first.removeprefix("--").strip() if first.startswith("--") else ""


def _strip(sql: str) -> str:
    return sql.strip().rstrip(";").rstrip()


def creation_order(selects: dict[str, str]) -> list[str]:
    """View names so that each comes after every other view its SQL names (a topological order).

    Among views whose dependencies are all created, names go in sorted order, so the order
    (and a failing CREATE's position) is the same on every run.
    """
    deps = {
        name: {other for other in selects if other != name and re.search(rf"\b{re.escape(other)}\b", sql)}
        for name, sql in selects.items()
    }
    sorter = TopologicalSorter(deps)
    try:
        sorter.prepare()
    except CycleError as exc:
        raise ValueError(f"sql/views: circular reference {' -> '.join(exc.args[1])}") from exc
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order += ready
        sorter.done(*ready)
    return order


def create_views(con: duckdb.DuckDBPyConnection, temporary: bool = False) -> list[str]:
    """CREATE OR REPLACE [TEMP] VIEW for every sql/views/*.sql and the labeled twins; return the view names in
    creation order."""
    selects = views()
    order = creation_order(selects)
    kind = "TEMP VIEW" if temporary else "VIEW"
    for name in order:
        try:
            con.execute(f"CREATE OR REPLACE {kind} {name} AS\n{selects[name]}")
        except duckdb.Error as exc:  # name the file: usually a warehouse whose schema is older than the views
            file = name.removeprefix("labeled_")  # a twin: its file
            raise type(exc)(f"sql/views/{file}.sql: {exc} (is the warehouse schema up to date? run calscore init)") \
                from exc
    return order


def run_query(con: duckdb.DuckDBPyConnection, name: str):
    """Run sql/queries/<name>.sql on a connection that has the views; return the Arrow table."""
    queries = query_files()
    if name not in queries:
        raise KeyError(f"no query {name!r} in sql/queries (have: {', '.join(queries)})")
    return con.sql(_strip(queries[name])).to_arrow_table()
