"""The coverage floor a champion applies (`jobs.calibrators.coverage_floor.decide_floor`), on hand-computed cases.

Binary rows whose out-of-fold probability of label 0 is the confidence: a correct row has y = 0, a wrong one
y = 1. Off-format rows (coverage 0.2, below the task file's 0.5) are compared with the rows at or above the floor
whose confidence lands in manual_check (0.5 <= c < 0.7); rows in auto or review never enter the comparison. Each
interval is recomputed independently: scipy's Wilson interval for equal weights, the textbook formula on Kish's
effective n for unequal ones.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from calscore.jobs.calibrators.coverage_floor import decide_floor, floor_sentence
from calscore.jobs.decisions import applied_floor
from calscore.jobs.spec import DEFAULT_BUCKETS

FLOOR = 0.5


def rows(*groups: tuple[int, int, float, float, float]):
    """(coverage, probs, y, weights) from groups of (n correct, n wrong, confidence, coverage, weight)."""
    cov, conf, y, w = [], [], [], []
    for right, wrong, c, coverage, weight in groups:
        n = right + wrong
        cov += [coverage] * n
        conf += [c] * n
        y += [0] * right + [1] * wrong
        w += [weight] * n
    conf = np.array(conf)
    return np.array(cov), np.column_stack([conf, 1 - conf]), np.array(y), np.array(w)


def wilson(k: int, n: int) -> tuple[float, float]:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


def test_off_format_rows_shown_less_accurate_keep_the_floor():
    # off-format: 20 of 40 right (0.5, Wilson [0.352, 0.648]); manual_check: 90 of 100 right (0.9);
    # 50 auto rows, all wrong, are not in the comparison
    d = decide_floor(DEFAULT_BUCKETS, FLOOR, *rows((20, 20, 0.95, 0.2, 1.0), (90, 10, 0.6, 0.9, 1.0),
                                                    (0, 50, 0.95, 0.9, 1.0)), recipe="platt")
    low, high = wilson(20, 40)
    assert d["off_format"]["n"] == 40 and d["off_format"]["accuracy"] == pytest.approx(0.5)
    assert (d["off_format"]["low"], d["off_format"]["high"]) == pytest.approx((low, high), abs=1e-12)
    assert d["compared"]["n"] == 100 and d["compared"]["accuracy"] == pytest.approx(0.9)
    assert high < 0.9 and d["shown"] and d["in_effect"] == FLOOR
    assert applied_floor(FLOOR, d) == FLOOR
    line = floor_sentence(d, FLOOR)
    assert line.startswith("coverage floor in effect: 0.50, the task file's; the labels show off-format rows")
    assert f"accuracy 0.500 [{low:.3f}, {high:.3f}] (n=40)" in line and "manual_check's accuracy" in line
    assert "(platt)" in line


@pytest.mark.parametrize("right", [36, 39], ids=["as accurate", "more accurate"])
def test_off_format_rows_as_accurate_or_better_lift_the_floor(right):
    d = decide_floor(DEFAULT_BUCKETS, FLOOR, *rows((right, 40 - right, 0.55, 0.2, 1.0), (90, 10, 0.6, 0.9, 1.0)))
    _, high = wilson(right, 40)
    assert d["off_format"]["high"] == pytest.approx(high, abs=1e-12) and high >= 0.9
    assert not d["shown"] and d["in_effect"] == 0.0 and applied_floor(FLOOR, d) == 0.0
    line = floor_sentence(d, FLOOR)
    assert line.startswith("coverage floor in effect: 0.00, lifted from the task file's 0.50, so off-format rows "
                           "are bucketed by their confidence")
    assert "upper bound is not below manual_check's accuracy" in line


def test_the_upper_bound_uses_kish_s_effective_n():
    # off-format: 10 right of weight 4, 10 wrong of weight 1: p = 40/50 = 0.8, n_eff = 50^2 / 170 = 14.7
    d = decide_floor(DEFAULT_BUCKETS, FLOOR, *rows((10, 0, 0.6, 0.2, 4.0), (0, 10, 0.6, 0.2, 1.0),
                                                    (95, 5, 0.6, 0.9, 1.0)))
    p, n = 0.8, 50 ** 2 / 170
    z = 1.959963984540054
    high = (p + z * z / (2 * n) + z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)
    assert d["off_format"]["accuracy"] == pytest.approx(p) and d["off_format"]["n_eff"] == pytest.approx(n)
    assert d["off_format"]["high"] == pytest.approx(high, abs=1e-9)
    assert high < 0.95 and d["shown"]  # 0.929 < 0.95
    assert "effective n 14.7" in floor_sentence(d, FLOOR)


def test_without_off_format_labels_the_floor_does_not_apply_and_says_why():
    d = decide_floor(DEFAULT_BUCKETS, FLOOR, *rows((90, 10, 0.6, 0.9, 1.0)))
    assert not d["shown"] and d["in_effect"] == 0.0 and d["off_format"]["n"] == 0
    line = floor_sentence(d, FLOOR)
    assert "no audit label has coverage below 0.50: the labels cannot show that off-format rows are less accurate " \
           "than manual_check" in line
    assert "n=0" not in line and "nan" not in line and "None" not in line  # never cites labels that do not exist


def test_without_labels_in_the_compared_bucket_the_floor_does_not_apply():
    d = decide_floor(DEFAULT_BUCKETS, FLOOR, *rows((5, 35, 0.6, 0.2, 1.0), (50, 0, 0.95, 0.9, 1.0)))
    assert d["compared"]["n"] == 0 and not d["shown"] and d["in_effect"] == 0.0
    line = floor_sentence(d, FLOOR)
    assert "no audit label at or above coverage 0.50 lands in manual_check" in line
    assert "n=0" not in line and "None" not in line


def test_no_floor_set_and_no_decision_yet():
    d = decide_floor(DEFAULT_BUCKETS, 0.0, *rows((5, 35, 0.6, 0.2, 1.0)))
    assert d["in_effect"] == 0.0 and d["off_format"] is None and "sets no coverage floor" in floor_sentence(d, 0.0)
    assert applied_floor(FLOOR, None) == FLOOR
    assert floor_sentence(None, FLOOR, has_champion=False) == (
        "coverage floor in effect: 0.50, the task file's, not tested by labels: the task has no champion yet")


def test_a_decision_made_for_another_task_file_floor_is_not_applied():
    d = decide_floor(DEFAULT_BUCKETS, 0.4, *rows((36, 4, 0.55, 0.2, 1.0), (90, 10, 0.6, 0.9, 1.0)))
    assert d["in_effect"] == 0.0 and applied_floor(0.4, d) == 0.0
    assert applied_floor(FLOOR, d) == FLOOR  # the file now says 0.5: rows in [0.4, 0.5) were never tested
    assert "decided for the task file's 0.40 (recalibrate to decide it for 0.50)" in floor_sentence(d, FLOOR)


def test_a_kept_champion_whose_floor_decision_changes_is_reissued_and_re_applied(tmp_path):
    """The report fixture (300 audit labels, a Platt champion without a floor decision) recalibrated: the refreshed
    champion carries its floor. The task file's floor then moves to 0.4 with no new label: the champion is kept (its
    recipe refitted is itself), but its floor decision was made for 0.5, so it is decided again for 0.4 and the
    champion re-issued with it (same calibrator, new document), re-applied to every row, its fit rows kept."""
    from calscore.calibration_store.store import champion, document, list_events
    from calscore.jobs.calibrators.recalibrate import run_recalibration
    from calscore.jobs.warehouse.connection import reader
    from report_fixtures import fill_report_warehouse

    spec = fill_report_warehouse(tmp_path / "calscore.duckdb")["spec"]
    spec = spec.model_copy(update={"calibration": spec.calibration.model_copy(update={"reapply_days": 100_000})})
    first = run_recalibration(spec)
    moved = spec.model_copy(update={"coverage_floor": 0.4})
    assert moved.task_version == spec.task_version  # the floor is not part of what the model is asked
    second = run_recalibration(moved)
    third = run_recalibration(moved)
    assert first["promoted"] and not second["promoted"] and "no label changed" in second["decision"]
    assert second["floor_changed"] and second["champion"] not in (None, first["version"])
    assert not third["floor_changed"] and third["champion"] == second["champion"]  # nothing moved: nothing re-issued
    with reader(spec.warehouse.path) as con:
        doc = champion(con, spec.task_version)
        events = [(e["event"], e["version"]) for e in list_events(con, spec.task_version)][-2:]
        fit = [set(con.execute("select row_id from calibrator_fit_rows where version = ?", [v]).fetchall())
               for v in (first["version"], second["champion"])]
        decided = con.execute("select calibrator_version, count(*) filter (bucket_reason = 'off_format'),"
                              " count(*) filter (coverage < 0.4) from current_decisions group by all").fetchall()
    assert doc["version"] == second["champion"] and doc["coverage_floor"]["task_floor"] == 0.4
    assert events == [("retired", first["version"]), ("floor_changed", second["champion"])]
    with reader(spec.warehouse.path) as con:
        before = document(con, first["version"])
    assert (doc["method"], doc["params"]) == (before["method"], before["params"]) and fit[0] == fit[1] and fit[0]
    in_effect = doc["coverage_floor"]["in_effect"]
    [(version, off_format_rows, below)] = decided
    assert version == second["champion"] and off_format_rows == (below if in_effect else 0)
    assert second["coverage_floor"].startswith(f"coverage floor in effect: {in_effect:.2f}")
    assert "floor decision changed" in second["markdown"]
