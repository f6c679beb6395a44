"""The nightly off-format check on known shares, in a real DuckDB warehouse: tonight's share of rows under the
task's coverage floor against the reference nights' (no champion yet: the task version's rows of the days before)."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from prediction_rows import insert_predictions, task

from calscore.jobs.common.clock import utcnow
from calscore.jobs.reports.health import health_checks
from calscore.jobs.warehouse.connection import writer

TONIGHT = "run-tonight"


def off_format_check(tmp_path, tonight: tuple[int, int], reference: tuple[int, int], reference_floor: float = 0.5):
    """The off_format check of a night of `tonight` = (rows, off-format rows) against yesterday's `reference`,
    scored with `reference_floor`; the task's floor is 0.5, off-format rows have coverage 0.3, the others 0.6."""
    path = tmp_path / "calscore.duckdb"
    spec = task(path, coverage_floor=0.5)
    with writer(path) as con:
        for run_id, (rows, off), days_ago, floor in ((TONIGHT, tonight, 0, None),
                                                      ("run-reference", reference, 1, reference_floor)):
            coverage = np.where(np.arange(rows) < off, 0.3, 0.6)
            insert_predictions(con, spec, run_id, coverage, np.full(rows, 0.8), utcnow() - timedelta(days=days_ago),
                               decided_floor=floor)
    [check] = [c for c in health_checks(spec, TONIGHT) if c.name == "off_format"]
    return check


def test_a_rise_from_5_to_30_percent_off_format_warns_with_both_shares(tmp_path):
    check = off_format_check(tmp_path, tonight=(100, 30), reference=(200, 10))
    assert check.status == "warning" and check.reference_rows == 200
    assert check.value == pytest.approx(0.30) and check.reference == pytest.approx(0.05)
    assert check.detail == "off-format share 0.300 vs 0.050 (rose +0.250; warning beyond 0.05)"


def test_equal_shares_are_ok(tmp_path):
    check = off_format_check(tmp_path, tonight=(100, 5), reference=(200, 10))
    assert check.status == "ok"
    assert check.detail == "off-format share 0.050 vs 0.050 (rose +0.000; warning beyond 0.05)"


def test_a_night_without_off_format_rows_has_a_share_of_0_not_no_reference(tmp_path):
    check = off_format_check(tmp_path, tonight=(100, 0), reference=(200, 10))
    assert check.status == "ok" and check.value == 0.0 and check.reference == pytest.approx(0.05)


def test_the_reference_is_read_at_tonights_floor(tmp_path):
    # the reference was scored when the floor was 0.7, so all its rows (coverage 0.3 or 0.6) were marked
    # off-format; at today's 0.5 only 5% are: a changed floor is not a change in the model's answers
    check = off_format_check(tmp_path, tonight=(100, 5), reference=(200, 10), reference_floor=0.7)
    assert check.status == "ok" and check.reference == pytest.approx(0.05)
