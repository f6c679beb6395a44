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


def test_review_queue_head_never_numbers_the_whole_queue(con, tmp_path):
    """`queue_position <= 50` used to sort every unlabeled review row with its text before keeping 50."""
    queue = con.execute("select count(*) from current_decisions where bucket = 'review'").fetchone()[0]
    assert queue > 40_000  # a queue worth a full sort
    ops = operators(con, "select * from review_queue where queue_position <= 50", tmp_path)
    assert not [op for op in ops if op["name"] in ("WINDOW", "ORDER_BY", "STREAMING_WINDOW")]
    texts = [op for op in ops if op["table"].endswith("predictions") and "text" in op["columns"]]
    assert texts and max(op["rows"] for op in texts) <= 50  # text read for the 50 rows shown, not the queue


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
