"""The review queue is kept at write time (migration 013): every writer that moves a row in or out of it keeps it,
in its own transaction, and the queue, review_next and every read of them return the rows the read-time
definition returned before (review_queue_oracle.py).

The writers, on a real warehouse file: scoring (write_staged), the label import (import_labels, with a label that
arrives before its row and a correction) and the re-application of a champion (write_decisions); the migration,
on a synthetic warehouse written on an old schema and then migrated.
"""
from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pytest

from calscore.jobs.spec import load_spec
from calscore.jobs.warehouse.connection import reader
from calscore.jobs.warehouse.views import run_query
from flow_fixtures import task_toml, texts, write_lookup_scores
from review_queue_oracle import OLD_REVIEW_NEXT, new_queue, old_queue
from writer_steps import label_rows, redecide, score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from synthetic_warehouse import build_warehouse  # noqa: E402  (bench/ is not a package)


def _same_as_before(path: Path) -> list[tuple]:
    """The queue equals the read-time definition's, row for row and in order, and so does review_next; the queue."""
    with reader(path) as con:
        queue = new_queue(con)
        assert queue == old_queue(con)
        assert run_query(con, "review_next").to_pylist() == con.sql(OLD_REVIEW_NEXT).to_arrow_table().to_pylist()
    return queue


def _ids(queue: list[tuple]) -> set[str]:
    return {row[2] for row in queue}


def test_every_writer_keeps_the_queue_as_the_read_time_definition_has_it(tmp_path):
    ids, body, truth = texts(400)
    spec = load_spec(task_toml(tmp_path, write_lookup_scores(tmp_path / "scores.parquet", body, truth),
                               backend="lookup"))
    early = ids[0:200:10]  # labeled before their rows are scored: they never wait
    label_rows(spec, early, "positive")

    score(spec, "night-001", 200, 0)
    queue = _same_as_before(spec.warehouse.path)
    assert len(queue) > 30 and not _ids(queue) & set(early)
    with reader(spec.warehouse.path) as con:
        buckets = dict(con.execute("select row_id, bucket from current_decisions").fetchall())

    labeled = sorted(_ids(queue))[:10]
    label_rows(spec, labeled, "negative")
    queue = _same_as_before(spec.warehouse.path)
    assert not _ids(queue) & set(labeled)

    # a champion re-decides: auto rows into the queue, waiting rows out, labeled review rows stay out
    into = [r for r in ids[:200] if buckets.get(r) == "auto" and r not in early][:8]
    out = sorted(_ids(queue))[:8]
    redecide(spec, {**{r: ("review", 0.71 + i / 100) for i, r in enumerate(into)},
                     **{r: ("auto", 0.97) for r in out},
                     **{r: ("review", 0.72) for r in labeled[:4] + early[:4]}})
    queue = _same_as_before(spec.warehouse.path)
    assert set(into) <= _ids(queue) and not _ids(queue) & set(out + labeled + early)

    label_rows(spec, labeled[:3], "positive")  # a correction: still labeled, still out
    label_rows(spec, into[:2], "positive")  # re-decided into the queue, then labeled: out
    score(spec, "night-002", 200, 200)
    queue = _same_as_before(spec.warehouse.path)
    assert any(r >= "r00200" for r in _ids(queue)) and not _ids(queue) & set(into[:2])


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """A synthetic warehouse written on the schema of migration 003 and migrated: migration 013 fills its queue."""
    return build_warehouse(tmp_path_factory.mktemp("migrated"), 20_000)


def test_the_migration_fills_the_queue_of_a_warehouse_that_has_rows(migrated):
    queue = _same_as_before(migrated.warehouse.path)
    assert len(queue) > 5_000


def test_the_documented_reads_of_the_queue_return_what_the_read_time_definition_returned(migrated):
    with duckdb.connect(str(migrated.warehouse.path), read_only=True) as con:
        before = old_queue(con)  # one task version: its queue order is the order of the whole queue
        head = con.execute("select * from review_queue order by decision_confidence, scored_at, row_id limit 50")
        assert head.fetchall() == before[:50]
        head = con.execute("select decision_confidence from review_queue order by decision_confidence limit 20")
        assert [c for (c,) in head.fetchall()] == [row[6] for row in before[:20]]
        assert con.execute("select count(*) from review_queue").fetchall()[0][0] == len(before)
        some = con.execute("select * from review_queue limit 20").fetchall()
        assert len(some) == 20 and set(some) <= set(before)
