"""A migration interrupted by SIGKILL at any point is completed by the next writer, without manual repair: each
migration is one transaction, so a killed one leaves the schema it found, and `calscore init` (or the next run)
applies it again. The rows written before stay as they were."""
from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from calscore.jobs.warehouse.migrations import migration_files
from cli_processes import DEADLINE, REPO, env, finish, sigkill

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from synthetic_warehouse import FILLED_SCHEMA, build_warehouse  # noqa: E402  (bench/ is not a package)

ROWS = 200_000


def init(task: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "calscore.cli", "init", "--task", str(task)], cwd=REPO, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def schema_and_rows(path: Path) -> tuple[list[int], int, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        done = [v for (v,) in con.execute("select version from schema_migrations order by version").fetchall()]
        return done, *con.execute("select count(*), count(distinct row_id) from predictions").fetchone()


@pytest.mark.parametrize("seed", range(3))
def test_a_migration_killed_at_a_random_moment_is_completed_by_the_next_init(tmp_path, seed):
    spec = build_warehouse(tmp_path, ROWS, schema=FILLED_SCHEMA)
    before = schema_and_rows(spec.warehouse.path)
    assert before == (list(range(1, FILLED_SCHEMA + 1)), ROWS, ROWS)
    killed = init(tmp_path / "task.toml")
    time.sleep(random.Random(seed).uniform(0.5, 6.0))  # from opening the file to the last migrations
    sigkill(killed)
    partly = schema_and_rows(spec.warehouse.path)[0]
    assert partly == sorted(partly) and partly[:FILLED_SCHEMA] == list(range(1, FILLED_SCHEMA + 1))
    code, out = finish(init(tmp_path / "task.toml"))
    assert code == 0, out
    latest = [number for number, _, _ in migration_files()]
    assert schema_and_rows(spec.warehouse.path) == (latest, ROWS, ROWS)
    with duckdb.connect(str(spec.warehouse.path), read_only=True) as con:  # the views are there for analysts
        assert con.execute("select count(*) from current_decisions").fetchone()[0] == ROWS
