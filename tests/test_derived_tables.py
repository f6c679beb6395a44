"""The copy of the labeled rows' predictions and the counts of current decisions (migration 016) are kept by every
writer in its own transaction, equal at every step to the recount migration 017 makes (derived_tables.py): scoring
(a label that came before its row), the label import (a first label, a correction) and the re-application of a
champion (labeled and unlabeled rows moving between buckets). Migration 017's recount itself is checked against the
views over every prediction, on a synthetic warehouse written on an old schema and then migrated."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import derived_tables
from calscore.jobs.spec import load_spec
from calscore.jobs.warehouse.connection import reader
from calscore.jobs.warehouse.views import create_views
from flow_fixtures import task_toml, texts, write_lookup_scores
from writer_steps import label_rows, redecide, score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from synthetic_warehouse import build_warehouse  # noqa: E402  (bench/ is not a package)


def _labeled_twin_is_the_labeled_view(path: Path) -> int:
    """labeled_predictions_current holds exactly predictions_current's rows with a label, column for column;
    their number."""
    with reader(path) as con:
        create_views(con, temporary=True)
        columns = ", ".join(f'"{c}"' for c in con.sql("select * from predictions_current limit 0").columns)
        twin = con.sql(f"select {columns} from labeled_predictions_current").fetchall()
        view = con.sql(f"select {columns} from predictions_current where has_label").fetchall()
    assert sorted(twin, key=repr) == sorted(view, key=repr)
    return len(twin)


def test_every_writer_keeps_the_copy_and_the_counts_equal_to_a_recount(tmp_path):
    ids, body, truth = texts(400)
    spec = load_spec(task_toml(tmp_path, write_lookup_scores(tmp_path / "scores.parquet", body, truth),
                               backend="lookup"))
    path = spec.warehouse.path
    early = ids[0:200:10]  # labeled before their rows are scored
    label_rows(spec, early, "positive")
    score(spec, "night-001", 200, 0)
    assert derived_tables.differences(path) == []
    assert _labeled_twin_is_the_labeled_view(path) == len(early)

    later = ids[1:200:10]
    label_rows(spec, later, "negative")  # first labels of rows scored before
    label_rows(spec, early[:3], "negative")  # corrections: the rows stay copied, once
    assert derived_tables.differences(path) == []
    assert _labeled_twin_is_the_labeled_view(path) == len(early) + len(later)

    with reader(path) as con:
        before = con.execute("select bucket, count(*) from current_decisions group by all order by 1").fetchall()
    # a champion re-decides labeled and unlabeled rows into other buckets and confidences
    moved = {r: ("review", 0.71 + i / 1000) for i, r in enumerate(ids[0:200:3])}
    redecide(spec, {**moved, **{r: ("auto", 0.97) for r in ids[2:200:7] if r not in moved}})
    assert derived_tables.differences(path) == []
    with reader(path) as con:
        after = con.execute("select bucket, count(*) from current_decisions group by all order by 1").fetchall()
        assert con.execute("select count(*) from labeled_predictions where reapplied_at is not null"
                           ).fetchall()[0][0] > 10
    assert after != before
    assert _labeled_twin_is_the_labeled_view(path) == len(early) + len(later)

    score(spec, "night-002", 200, 200)  # a second night, none of it labeled
    assert derived_tables.differences(path) == []
    with reader(path) as con:
        assert con.execute("select sum(rows) from decision_counts").fetchall()[0][0] == 400


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """A synthetic warehouse written on the schema of migration 003 and migrated: migration 017 fills both."""
    return build_warehouse(tmp_path_factory.mktemp("migrated"), 20_000)


def test_the_migration_counts_every_current_decision_and_copies_every_labeled_row(migrated):
    path = migrated.warehouse.path
    with reader(path) as con:
        counted = con.execute(
            "select night, bucket, cast(sum(rows) as bigint), sum(confidence_sum) / sum(rows) from decision_counts"
            " group by all order by all").fetchall()
        decided = con.execute(
            "select night, bucket, count(*), avg(decision_confidence) from current_decisions"
            " group by all order by all").fetchall()
        reapplied = con.execute("select count(*) from labeled_predictions where reapplied_at is not null"
                                ).fetchall()[0][0]
    assert [r[:3] for r in counted] == [r[:3] for r in decided]
    assert [r[3] for r in counted] == pytest.approx([r[3] for r in decided], rel=1e-12)
    assert sum(r[2] for r in counted) == 20_000
    assert reapplied > 0  # the synthetic warehouse's first week was re-decided by its champion
    assert _labeled_twin_is_the_labeled_view(path) > 300
