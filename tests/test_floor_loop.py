"""The coverage floor through the whole loop (real DuckDB, real Prefect flows, the `lookup` scorer).

An overconfident scorer (raw share 0.60-0.99, right 55-75% of the time) whose every fifth text is off-format
(coverage 0.2, below the task file's floor 0.5). Night 1 is scored before any champion: its off-format rows go to
`manual` as the task file says, untested. Random-sample labels of night 1 are imported and a recalibration
promotes Platt and decides the floor from the labels:

- off-format rows right as often as the others: the floor is lifted; the re-application and the next night's
  scoring bucket them by their confidence, `explain` too, and status/thresholds/the recalibration say so;
- off-format rows right a quarter of the time: the labels show them less accurate than manual_check, the floor
  stays and they stay in `manual`.

The expected floor decision is recomputed here from the stored out-of-fold predictions (the champion's recipe,
table `evidence`) with scipy's Wilson interval.
"""
from __future__ import annotations

import math
import random
from datetime import date

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import binomtest

from flow_fixtures import task_toml

NIGHT1, NIGHT2 = 500, 100
OFF_FORMAT = 0.2
FLOOR = 0.5


def off_format(i: int) -> bool:
    return i % 5 == 0


def write_scores(path, worse: bool, seed: int = 7) -> dict[str, str]:
    """The lookup table for both nights' texts; returns each text's true label."""
    rng = random.Random(seed)
    columns: dict[str, list] = {"text": [], "positive": [], "negative": []}
    truth = {}
    for i in range(NIGHT1 + NIGHT2):
        text = f"text number {i}"
        label = "positive" if rng.random() < 0.5 else "negative"
        share = 0.6 + 0.39 * rng.random()
        p_right = 0.25 if worse and off_format(i) else 0.5 + 0.5 * (share - 0.5)
        predicted = label if rng.random() < p_right else ("negative" if label == "positive" else "positive")
        coverage = OFF_FORMAT if off_format(i) else 0.95
        other = "negative" if predicted == "positive" else "positive"
        columns["text"].append(text)
        columns[predicted].append(math.log(coverage * share))
        columns[other].append(math.log(coverage * (1 - share)))
        truth[text] = label
    pq.write_table(pa.table(columns), path)
    return truth


def write_night(folder, name: str, start: int, n: int) -> None:
    ids = [f"r{i:05d}" for i in range(start, start + n)]
    pq.write_table(pa.table({"id": ids, "text": [f"text number {i}" for i in range(start, start + n)],
                             "category": ["a"] * n}), folder / "batches" / f"{name}.parquet")


def q(folder, sql, params=None):
    with duckdb.connect(str(folder / "w.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def run_loop(tmp_path, worse: bool) -> dict:
    from calscore.flows.labels import ingest_labels
    from calscore.flows.nightly import nightly_scoring
    from calscore.flows.recalibration import recalibration

    truth = write_scores(tmp_path / "scores.parquet", worse)
    task = task_toml(tmp_path, tmp_path / "scores.parquet", backend="lookup", coverage_floor=FLOOR, min_labels=100,
                     refit_after=100_000)
    write_night(tmp_path, "night-001", 0, NIGHT1)
    nightly_scoring(str(task), night=date(2026, 3, 1))
    before = q(tmp_path, "select count(*) filter (bucket_reason = 'off_format'), count(*) filter (coverage < 0.5)"
                         " from predictions")
    labels = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"id": [f"r{i:05d}" for i in range(NIGHT1)],
                             "label": [truth[f"text number {i}"] for i in range(NIGHT1)]}), labels)
    ingest_labels(str(task), file=str(labels), trigger=False, design="random")
    result = recalibration(str(task))
    write_night(tmp_path, "night-002", NIGHT1, NIGHT2)
    nightly_scoring(str(task), night=date(2026, 3, 2))
    return {"task": task, "result": result, "before": before[0], "truth": truth}


def expected_decision(folder, result) -> dict:
    """Both groups' accuracy and Wilson interval recomputed from the champion recipe's stored out-of-fold
    predictions of the random-sample evidence labels (equal weights)."""
    rows = q(folder, "select e.label = l.label, p.coverage, e.confidence from evidence e"
                     " join predictions p using (row_id) join labels l using (row_id) where e.recipe = 'platt'")
    correct = np.array([r[0] for r in rows])
    coverage = np.array([r[1] for r in rows])
    confidence = np.array([r[2] for r in rows])
    off = coverage < FLOOR
    compared = ~off & (confidence >= 0.5) & (confidence < 0.7)
    out = {}
    for name, group in (("off_format", off), ("compared", compared)):
        k, n = int(correct[group].sum()), int(group.sum())
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        out[name] = {"n": n, "accuracy": k / n, "low": ci.low, "high": ci.high}
    return out


@pytest.fixture(scope="module", params=[False, True], ids=["as accurate", "worse"])
def loop(request, tmp_path_factory, prefect_harness):
    return request.param, run_loop(tmp_path_factory.mktemp("floor"), request.param)


def test_before_a_champion_the_task_file_floor_applies_untested(loop):
    _, run = loop
    off_rows, below = run["before"]
    assert off_rows == below == NIGHT1 // 5


def test_the_recalibration_decides_the_floor_from_the_out_of_fold_labels(loop):
    from calscore.calibration_store.store import champion
    from calscore.jobs.spec import load_spec
    from calscore.jobs.warehouse.connection import reader

    worse, run = loop
    result, folder = run["result"], run["task"].parent
    assert result["promoted"], result["decision"]
    spec = load_spec(run["task"])
    with reader(spec.warehouse.path) as con:
        doc = champion(con, spec.task_version)
    floor = doc["coverage_floor"]
    assert doc["schema_version"] == 2 and floor["recipe"] == "platt" and floor["task_floor"] == FLOOR
    expected = expected_decision(folder, result)
    for group in ("off_format", "compared"):
        for key, value in expected[group].items():
            assert floor[group][key] == pytest.approx(value, abs=1e-9), (group, key)
    shown = expected["off_format"]["high"] < expected["compared"]["accuracy"]
    assert shown == worse == floor["shown"]
    assert floor["in_effect"] == (FLOOR if worse else 0.0)
    assert result["coverage_floor"].startswith(f"coverage floor in effect: {floor['in_effect']:.2f}")
    assert f"- {result['coverage_floor']}" in result["markdown"]


def off_format_buckets(folder, night: str):
    """Each off-format row's current decision (a re-applied one where there is one: view current_decisions)."""
    return q(folder, "select bucket, bucket_reason, count(*) from current_decisions where coverage < 0.5"
                     " and night = ?::date group by all order by all", [night])


def test_the_re_application_and_the_next_night_follow_the_floor(loop):
    from calscore.jobs.spec import load_spec
    from calscore.jobs.decisions import assign_buckets

    worse, run = loop
    folder = run["task"].parent
    for night in ("2026-03-01", "2026-03-02"):  # night 1 re-applied, night 2 scored by the champion
        got = off_format_buckets(folder, night)
        if worse:
            assert got == [("manual", "off_format", NIGHT1 // 5 if night == "2026-03-01" else NIGHT2 // 5)]
        else:
            assert all(reason is None for _, reason, _ in got)
            # each off-format row in the bucket its calibrated confidence reaches, like any row
            rows = q(folder, "select confidence, coverage, bucket from current_decisions where coverage < 0.5"
                             " and night = ?", [night])
            spec = load_spec(run["task"])
            by_confidence, _ = assign_buckets(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                                              spec.buckets, 0.0)
            assert by_confidence.tolist() == [r[2] for r in rows]
            assert len({r[2] for r in rows}) > 1  # not all in one bucket
    current = q(folder, "select count(distinct calibrator_version) from current_decisions")
    assert current == [(1,)]  # every row decided by the champion that carries the floor


def test_explain_status_and_thresholds_report_the_floor_in_effect(loop):
    from calscore.jobs.calibrators.champion import explain_calibrated
    from calscore.jobs.reports.status import task_status
    from calscore.jobs.reports.thresholds import thresholds_text
    from calscore.jobs.spec import load_spec

    worse, run = loop
    spec = load_spec(run["task"])
    explained = explain_calibrated(spec, [math.log(0.2 * 0.95), math.log(0.2 * 0.05)], 0.2)
    assert explained["bucket"].endswith("(off_format)") == worse
    assert explained["floor"] == run["result"]["coverage_floor"]  # the row is under the task file's floor: why
    assert explain_calibrated(spec, [math.log(0.9 * 0.95), math.log(0.9 * 0.05)], 0.9)["floor"] is None
    line = run["result"]["coverage_floor"]
    assert line in task_status(spec).splitlines()
    text = thresholds_text(spec, 0.9).splitlines()
    at = text.index(line)
    assert text[at + 1].startswith("coverage floor from labels (task file: 0.50; a suggestion")
    if worse:
        assert "the labels show off-format rows (coverage below it) less accurate" in line
    else:
        assert "lifted from the task file's 0.50" in line and "do not show them less accurate" in line
