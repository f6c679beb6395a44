"""Real SQL lives in sql/statements/, loaded by name: every name used exists, every file is used,
each file says what it does, and every INSERT names its columns (never column order or SELECT *)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from calscore.jobs.warehouse.statements import statement

REPO = Path(__file__).resolve().parents[1]
STATEMENTS = REPO / "sql" / "statements"
# the folders whose modules may load statements (calibration_store sits below the warehouse layer)
CALLERS = ("jobs", "flows", "infra", "calscore")
_INSERT = re.compile(r"\binsert\s+(?:or\s+\w+\s+)?into\s+[\w.]+\s*(?P<next>by\s+name\b|\()?", re.IGNORECASE)


def statement_files() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(STATEMENTS.glob("*.sql"))}


def _calls_statement(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "statement"


def statement_calls() -> list[tuple[str, ast.Call]]:
    """(module path, call) for every call of a function named `statement` in the source folders."""
    calls = []
    for folder in CALLERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            calls += [(str(path.relative_to(REPO)), node)
                      for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if _calls_statement(node)]
    return calls


def used_names() -> set[str]:
    return {call.args[0].value for _, call in statement_calls() if call.args and isinstance(call.args[0], ast.Constant)}


def _without_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def test_statements_are_named_by_a_literal():
    """Only a literal name can be checked against sql/statements/."""
    dynamic = [f"{path}:{call.lineno}" for path, call in statement_calls()
               if len(call.args) != 1 or not isinstance(call.args[0], ast.Constant)
               or not isinstance(call.args[0].value, str)]
    assert not dynamic, f"statement(...) needs one literal name: {dynamic}"


def test_every_used_statement_exists():
    missing = sorted(used_names() - set(statement_files()))
    assert not missing, f"no sql/statements/<name>.sql for {missing}"
    for name in used_names():
        assert statement(name) == statement_files()[name].strip()


def test_every_statement_file_is_used():
    unused = sorted(set(statement_files()) - used_names())
    assert not unused, f"sql/statements files no module loads: {unused}"


def test_every_statement_file_says_what_it_does():
    for name, sql in statement_files().items():
        first = sql.splitlines()[0] if sql else ""
        assert first.startswith("-- ") and len(first) > 20, f"{name}.sql: start with a one-line `--` comment"


def test_every_insert_names_its_columns():
    inserts = 0
    for name, sql in statement_files().items():
        for match in _INSERT.finditer(_without_comments(sql)):
            inserts += 1
            assert match["next"], f"{name}.sql: INSERT must name its columns (BY NAME or a column list)"
    assert inserts  # the pattern still finds the statements' INSERTs


def test_the_insert_check_catches_positional_inserts():
    positional = ["insert into t values (?, ?)", "INSERT INTO t SELECT * FROM s", "insert or replace into t select 1"]
    named = ["insert into t (a, b) values ($a, $b)", "INSERT INTO t BY NAME SELECT * FROM s",
             "insert or replace into s.t(a) select 1"]
    assert all(not _INSERT.search(sql)["next"] for sql in positional)
    assert all(_INSERT.search(sql)["next"] for sql in named)


def test_a_missing_statement_names_its_file():
    with pytest.raises(FileNotFoundError, match=r"sql/statements/no_such_statement\.sql"):
        statement("no_such_statement")
