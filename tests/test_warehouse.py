"""The DuckDB warehouse on real files: migrations, schema, the file lock, Arrow inserts with MAP columns."""
from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from calscore.jobs.warehouse.connection import WarehouseBusy, reader, writer
from calscore.jobs.warehouse.migrations import migrate, migration_files

PRIMARY_KEYS = {
    "schema_migrations": ["version"],
    "runs": ["run_id"],
    "batches": ["task_name", "uri", "content_hash"],
    "predictions": ["task_version", "row_id"],
    "quarantine": ["task_name", "batch_uri", "batch_hash", "row_index"],
    "audit_samples": ["sample_id", "row_id"],
    "calibrators": ["version"],
    "reliability_snapshots": ["snapshot_id", "scores", "segment"],
}
# (table, column): (type, nullable)
KEY_COLUMNS = {
    ("predictions", "label_logprobs"): ("MAP(VARCHAR, DOUBLE)", False),
    ("predictions", "coverage"): ("DOUBLE", False),
    ("predictions", "raw_label"): ("VARCHAR", False),
    ("predictions", "raw_confidence"): ("DOUBLE", False),
    ("predictions", "label"): ("VARCHAR", False),
    ("predictions", "confidence"): ("DOUBLE", True),  # NULL until a calibrator exists
    ("predictions", "calibrator_version"): ("VARCHAR", True),
    ("predictions", "bucket"): ("VARCHAR", False),
    ("predictions", "truncated"): ("BOOLEAN", False),
    ("predictions", "metadata"): ("JSON", True),
    ("predictions", "scored_at"): ("TIMESTAMP WITH TIME ZONE", False),
    ("runs", "labels"): ("VARCHAR[]", True),
    ("runs", "status"): ("VARCHAR", False),
    ("runs", "heartbeat_at"): ("TIMESTAMP WITH TIME ZONE", False),
    ("batches", "rows_in"): ("BIGINT", True),
    ("batches", "status"): ("VARCHAR", False),
    ("labels", "label"): ("VARCHAR", False),
    ("labels", "inclusion_prob"): ("DOUBLE", True),
    ("labels", "superseded_at"): ("TIMESTAMP WITH TIME ZONE", True),
    ("calibrators", "document"): ("JSON", False),
    ("calibrators", "task_version"): ("VARCHAR", False),
    ("reliability_snapshots", "ece"): ("DOUBLE", True),
    ("reliability_snapshots", "bins"): ("JSON", True),
    ("reliability_snapshots", "n"): ("BIGINT", False),
    ("schema_migrations", "applied_at"): ("TIMESTAMP WITH TIME ZONE", False),
}


def _schema(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    columns = con.execute(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
    ).fetchall()
    constraints = con.execute(
        "SELECT table_name, constraint_type, constraint_column_names FROM duckdb_constraints()"
        " ORDER BY table_name, constraint_type, constraint_text"
    ).fetchall()
    return columns + [(t, c, tuple(cols)) for t, c, cols in constraints]


def test_migration_files_are_numbered_in_order() -> None:
    files = migration_files()
    assert files, "no migrations shipped"
    numbers = [n for n, _, _ in files]
    assert numbers == list(range(1, len(files) + 1)), "migrations must be numbered 1, 2, 3, ... without gaps"
    for number, name, sql in files:
        assert re.fullmatch(rf"{number:03d}_[a-z0-9_]+\.sql", name), name
        assert sql.strip()


def test_migrations_apply_are_recorded_and_run_once(tmp_path) -> None:
    path = tmp_path / "wh" / "calscore.duckdb"  # the parent folder does not exist yet
    with writer(path) as con:
        first = _schema(con)
    assert path.is_file()
    with reader(path) as con:
        recorded = con.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version").fetchall()
    assert [(v, n) for v, n, _ in recorded] == [(n, name) for n, name, _ in migration_files()]
    assert all(isinstance(at, datetime) and at.tzinfo is not None for _, _, at in recorded)

    with writer(path) as con:
        assert migrate(con) == []  # nothing pending
        assert _schema(con) == first
        again = con.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version").fetchall()
    assert again == recorded


def test_migrate_on_a_fresh_database_applies_every_file() -> None:
    con = duckdb.connect()
    try:
        assert migrate(con) == [name for _, name, _ in migration_files()]
        assert migrate(con) == []
    finally:
        con.close()


def test_tables_keys_and_column_types(tmp_path) -> None:
    path = tmp_path / "calscore.duckdb"
    with writer(path):
        pass
    with reader(path) as con:
        keys = {
            table: list(cols)
            for table, cols in con.execute(
                "SELECT table_name, constraint_column_names FROM duckdb_constraints()"
                " WHERE constraint_type = 'PRIMARY KEY'"
            ).fetchall()
        }
        columns = {
            (t, c): (dtype, nullable == "YES")
            for t, c, dtype, nullable in con.execute(
                "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            ).fetchall()
        }
        tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {*PRIMARY_KEYS, "labels", "calibrator_events"} <= tables
    for table, expected in PRIMARY_KEYS.items():
        assert keys.get(table) == expected, f"primary key of {table}"
    assert "labels" not in keys  # labels keep their history: several rows per row_id
    # appended to by every re-application: an index DuckDB loads whole to append to it (migration 015)
    assert "decisions" in tables and "decisions" not in keys
    for (table, column), expected in KEY_COLUMNS.items():
        assert columns.get((table, column)) == expected, f"{table}.{column}"


# --- the file lock ---------------------------------------------------------------------------
# Opens the file read-write, writes the marker, then holds the file until its stdin is closed.
_HOLDER = (
    "import duckdb, sys\n"
    "con = duckdb.connect(sys.argv[1])\n"
    "open(sys.argv[2], 'w').close()\n"
    "sys.stdin.read()\n"
    "con.close()\n"
)


def _hold(path: Path, marker: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path), str(marker)], stdin=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, "the holder process died before it opened the warehouse"
        assert time.monotonic() < deadline, "the holder process never opened the warehouse"
        time.sleep(0.02)
    return proc


def _release(proc: subprocess.Popen) -> None:
    if proc.stdin and not proc.stdin.closed:
        proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_a_held_file_makes_writer_and_reader_give_up_clearly(tmp_path) -> None:
    path = tmp_path / "calscore.duckdb"
    with writer(path):
        pass
    proc = _hold(path, tmp_path / "held")
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseBusy) as info:
            with writer(path, wait_seconds=1):
                pytest.fail("opened a file another process holds")
        waited = time.monotonic() - started
        message = str(info.value)
        assert str(path) in message and f"held by pid {proc.pid}" in message and "1 s" in message
        assert 0.9 <= waited < 15, waited  # it did wait, and gave up near the deadline
        assert isinstance(info.value.__cause__, duckdb.IOException)

        with pytest.raises(WarehouseBusy, match=f"held by pid {proc.pid}"):
            with reader(path, wait_seconds=0.5):
                pass
    finally:
        _release(proc)
    assert proc.returncode == 0
    with writer(path, wait_seconds=5) as con:  # free again
        assert con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(migration_files())


def test_a_writer_waits_for_a_short_holder(tmp_path) -> None:
    path = tmp_path / "calscore.duckdb"
    with writer(path):
        pass
    proc = _hold(path, tmp_path / "held")
    timer = threading.Timer(0.5, proc.stdin.close)
    timer.start()
    started = time.monotonic()
    try:
        with writer(path, wait_seconds=60) as con:
            waited = time.monotonic() - started
            con.execute("CREATE TABLE waited (x INTEGER)")
    finally:
        timer.cancel()
        _release(proc)
    assert waited >= 0.3, "the writer got in while the holder still had the file"
    with reader(path) as con:
        assert con.execute("SELECT count(*) FROM waited").fetchone()[0] == 0


def test_reader_on_a_missing_file_says_what_to_do(tmp_path) -> None:
    path = tmp_path / "nothing-here.duckdb"
    with pytest.raises(FileNotFoundError, match=r"no warehouse at .*nothing-here\.duckdb.*calscore init"):
        with reader(path):
            pass
    assert not path.exists()  # a reader never creates the file


def test_reader_cannot_write(tmp_path) -> None:
    path = tmp_path / "calscore.duckdb"
    with writer(path):
        pass
    with reader(path) as con:
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("CREATE TABLE nope (x INTEGER)")


# --- Arrow inserts --------------------------------------------------------------------------
_SAMPLES = {
    "VARCHAR": ("x", pa.string()),
    "DOUBLE": (0.5, pa.float64()),
    "BOOLEAN": (False, pa.bool_()),
    "BIGINT": (1, pa.int64()),
    "INTEGER": (1, pa.int32()),
    "JSON": ('{"source": "test"}', pa.string()),
    "TIMESTAMP WITH TIME ZONE": (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), pa.timestamp("us", tz="UTC")),
}


def test_map_column_round_trips_through_an_arrow_insert(tmp_path) -> None:
    path = tmp_path / "calscore.duckdb"
    logprobs = [
        {"positive": -0.10536051565782628, "negative": -2.3025850929940455},
        {"negative": -0.01005033585350145, "positive": -4.605170185988091},
        {"positive": -1e-12, "negative": -27.631021115928547, "neutral": -30.0},
    ]
    with writer(path) as con:
        required = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = 'predictions' AND is_nullable = 'NO' ORDER BY ordinal_position"
        ).fetchall()
        data: dict[str, pa.Array] = {}
        for column, dtype in required:
            if column == "row_id":
                data[column] = pa.array([f"r{i}" for i in range(len(logprobs))])
            elif column == "label_logprobs":
                data[column] = pa.array(logprobs, type=pa.map_(pa.string(), pa.float64()))
            else:
                assert dtype in _SAMPLES, f"add a sample value for {dtype} ({column})"
                value, arrow_type = _SAMPLES[dtype]
                data[column] = pa.array([value] * len(logprobs), type=arrow_type)
        staged = pa.table(data)
        con.register("staged", staged)
        con.execute("INSERT INTO predictions BY NAME SELECT * FROM staged")
        with pytest.raises(duckdb.ConstraintException):  # a re-run never duplicates rows
            con.execute("INSERT INTO predictions BY NAME SELECT * FROM staged")
        con.unregister("staged")

    with reader(path) as con:
        rows = con.execute(
            "SELECT row_id, label_logprobs, label_logprobs['positive'], typeof(label_logprobs)"
            " FROM predictions ORDER BY row_id"
        ).fetchall()
        back = con.sql("SELECT label_logprobs FROM predictions ORDER BY row_id").to_arrow_table()
    assert [r[0] for r in rows] == ["r0", "r1", "r2"]
    assert [r[1] for r in rows] == logprobs  # exact doubles, all keys
    assert [list(r[1]) for r in rows] == [list(m) for m in logprobs]  # key order kept
    assert [r[2] for r in rows] == [m["positive"] for m in logprobs]
    assert {r[3] for r in rows} == {"MAP(VARCHAR, DOUBLE)"}
    assert back.schema.field("label_logprobs").type == pa.map_(pa.string(), pa.float64())
    assert [dict(m) for m in back.column("label_logprobs").to_pylist()] == logprobs


def test_reader_on_an_older_schema_says_to_migrate(tmp_path):
    """A read-only session cannot migrate: it must say so, not fail on a missing table."""
    import duckdb

    from calscore.jobs.warehouse.connection import WarehouseOutdated, reader
    from calscore.jobs.warehouse.migrations import migration_files

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    number, name, sql = migration_files()[0]
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMPTZ)")
    con.execute(sql)
    con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [number, name])
    con.close()
    with pytest.raises(WarehouseOutdated, match=r"schema version 1, this calscore needs \d+: run `calscore init"):
        with reader(path):
            pass


def test_readers_wait_like_writers_and_say_who_holds_the_file(tmp_path, caplog) -> None:
    """A reader in a run waits with the writer's policy (not a short timeout) and names the holder as it waits."""
    import calscore.jobs.warehouse.connection as connection

    path = tmp_path / "calscore.duckdb"
    with writer(path):
        pass
    proc = _hold(path, tmp_path / "held")

    def release_once_told() -> None:  # an analyst closes the session once the reader has said it waits
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("waiting for" in r.getMessage() for r in caplog.records):
            time.sleep(0.05)
        _release(proc)

    releaser = threading.Thread(target=release_once_told)
    releaser.start()
    try:
        with caplog.at_level("WARNING", logger="calscore.jobs.warehouse.connection"), reader(path) as con:
            assert con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(migration_files())
    finally:
        releaser.join()
    waits = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert waits and f"held by pid {proc.pid}" in waits[0] and "read-only sessions block writers too" in waits[0]
    assert connection.WAIT_SECONDS >= 120  # what the README promises
