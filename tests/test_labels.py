"""Label import rules a person relies on: conflicting rows in one file are refused and named, label names
match whatever their case, nothing is dropped without a word (real DuckDB, no Prefect)."""
from __future__ import annotations

import duckdb
import pyarrow as pa

from calscore.jobs.labels.importing import import_labels
from calscore.jobs.spec import load_spec
from flow_fixtures import task_toml


def test_conflicting_labels_in_one_file_are_refused_and_named(tmp_path, tiny_model):
    spec = load_spec(task_toml(tmp_path, tiny_model))
    table = pa.table({
        "id": ["a", "b", "a", "c", "c", "d"],
        "label": ["positive", "negative", "negative", "Positive", "POSITIVE", " NEGATIVE "],
    })
    report = import_labels(spec, table, "reviewers.csv")
    assert report.conflicts == ["a"]
    text = "\n".join(report.lines())
    assert "1 id(s) have conflicting labels in this file and were not imported: a" in text
    assert "rejected row 0: id='a'" in text and "rejected row 2: id='a'" in text
    assert report.inserted == 3  # b, c (twice the same label: once), d
    with duckdb.connect(str(spec.warehouse.path), read_only=True) as con:
        stored = con.execute("SELECT row_id, label FROM labels ORDER BY row_id").fetchall()
    assert stored == [("b", "negative"), ("c", "positive"), ("d", "negative")]  # case folded to the task's names


def test_an_unknown_label_says_that_case_does_not_matter(tmp_path, tiny_model):
    spec = load_spec(task_toml(tmp_path, tiny_model))
    report = import_labels(spec, pa.table({"id": ["a"], "label": ["maybe"]}), "l.csv")
    assert report.inserted == 0
    assert report.rejected[0]["reason"] == "unknown label (task labels: positive, negative; case does not matter)"
