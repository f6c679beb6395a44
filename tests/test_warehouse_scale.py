"""The analyst side at scale (issue 13): on synthetic warehouses grown by SQL, every hot spot is held to a count
that does not depend on wall time: rows an operator produces, rows read from a table, Python's peak memory.

Two warehouses carry the same ~400 labels among 20,000 and 200,000 predictions: what the report, the
thresholds and the recalibration summary hold in Python must not grow with the predictions, only with labels.
Written against entry points that existed before the change, so the file runs unchanged on the old code.
"""
from __future__ import annotations

import gc
import json
import sys
import tracemalloc
from pathlib import Path

import duckdb
import pytest

from calscore.jobs.reports.html_report import report_markdown, write_report
from calscore.jobs.reports.thresholds import thresholds_text
from calscore.jobs.warehouse.views import query_files

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from synthetic_warehouse import build_warehouse  # noqa: E402  (bench/ is not a package)

pytestmark = pytest.mark.minutes(1.3)

SMALL, LARGE, LABELS = 20_000, 200_000, 400


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return build_warehouse(tmp_path_factory.mktemp("small"), SMALL, labeled_share=LABELS / SMALL)


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    return build_warehouse(tmp_path_factory.mktemp("large"), LARGE, labeled_share=LABELS / LARGE)


def operators(con: duckdb.DuckDBPyConnection, sql: str, tmp_path: Path) -> list[dict]:
    """Every operator DuckDB ran for `sql`: name, table scanned, projected columns, rows it produced."""
    out = tmp_path / "profile.json"
    con.execute("PRAGMA enable_profiling = 'json'")
    con.execute(f"PRAGMA profiling_output = '{out}'")
    con.execute(sql).fetchall()
    con.execute("PRAGMA disable_profiling")
    found = []

    def walk(node: dict) -> None:
        info = node.get("extra_info") or {}
        found.append({
            "name": node.get("operator_name") or node.get("name"),
            "table": str(info.get("Table", "")),
            "columns": str(info.get("Projections", "")),
            "rows": int(node.get("operator_cardinality", node.get("intermediate_rows", 0))),
        })
        for child in node.get("children", []):
            walk(child)

    profile = json.loads(out.read_text())
    for root in profile.get("operator", profile.get("children", [])):
        walk(root)
    return found


@pytest.fixture
def con(large):
    c = duckdb.connect(str(large.warehouse.path), read_only=True)
    yield c
    c.close()


def test_predictions_current_reads_each_prediction_once(con, tmp_path):
    """It joined predictions to itself (and windowed every decision) only to fetch label_logprobs and text."""
    ops = operators(con, "select count(*), count(text), sum(coverage) from predictions_current", tmp_path)
    read = sum(op["rows"] for op in ops if op["table"].endswith("predictions"))
    assert read == LARGE  # one scan: before, two (2 x 200,000)
    assert not [op for op in ops if op["table"].endswith("decisions")]


def test_threshold_volume_passes_over_the_rows_once(con, tmp_path):
    """Ten thresholds joined to every row made ~ten intermediate rows per prediction."""
    sql = query_files()["threshold_volume"].strip().rstrip(";")
    ops = operators(con, sql, tmp_path)
    assert max(op["rows"] for op in ops) <= LARGE  # before: the threshold join produced ~1,040,000


# The reads of the review queue the README shows, with the most rows each may hand to its text column.
QUEUE_READS = {
    "select * from review_queue order by decision_confidence, scored_at, row_id limit 50": 50,
    "select * from review_queue order by decision_confidence limit 20": 20,
    "select * from review_queue limit 20": 10_000,  # the first vectors the scan reads, whichever rows they hold
    "select count(*) from review_queue": 0,
    "@review_next": 50,
}


@pytest.mark.parametrize("sql", QUEUE_READS)
def test_a_read_of_the_review_queue_never_sorts_numbers_or_labels_the_whole_queue(con, sql, tmp_path):
    """`limit 20` numbered the whole queue (a window over every unlabeled review row, joined to the labels) before
    keeping 20: 20 s at ten million predictions. The queue is kept at write time (migration 013) now."""
    queue = con.execute("select count(*) from current_decisions where bucket = 'review'").fetchall()[0][0]
    assert queue > 40_000  # a queue worth a full sort
    ops = operators(con, query_files()[sql[1:]].strip().rstrip(";") if sql.startswith("@") else sql, tmp_path)
    assert not [op for op in ops if op["name"] in ("WINDOW", "ORDER_BY", "TOP_N") and op["rows"] > 50]
    assert not [op for op in ops if op["table"].endswith("labels")]  # no join of the queue to the labels
    texts = [op["rows"] for op in ops if op["table"].endswith("predictions") and "text" in op["columns"]]
    assert max(texts, default=0) <= QUEUE_READS[sql]  # text read for the rows shown, not the queue


def python_peak(call) -> int:
    """Python's peak traced memory (bytes) while `call()` runs: numpy arrays and Python objects.

    The smaller of two runs, each after a full collection: garbage left by earlier tests (and
    collected, or not, in the middle of a run) otherwise moves the peak by megabytes."""
    peaks = []
    for _ in range(2):
        gc.collect()
        tracemalloc.start()
        try:
            call()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    return min(peaks)


@pytest.mark.parametrize("command", ["thresholds", "report", "recalibration summary"])
def test_python_memory_is_bounded_by_labels_not_predictions(small, large, command, tmp_path):
    """10x the predictions with the same labels: what Python holds stays put (it grew ~0.7 GB per million)."""
    run = {
        "thresholds": lambda spec: thresholds_text(spec, 0.9),
        "report": lambda spec: write_report(spec, tmp_path / spec.name),
        "recalibration summary": report_markdown,  # what the recalibration flow attaches after every run
    }[command]
    run(small)  # imports and caches out of the way
    peaks = {size: python_peak(lambda: run(spec)) for size, spec in ((SMALL, small), (LARGE, large))}
    assert peaks[LARGE] < 1.3 * peaks[SMALL], peaks  # before: ~10x, every prediction became Python objects
