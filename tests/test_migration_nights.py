"""Migration 009 gives the rows of a warehouse written before nights existed their run's night: a run that started
before midnight (UTC) and wrote rows after it keeps them all on the night it started, as scoring records a night
now; rows whose run the ledger does not know keep the UTC day they were scored."""
from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import duckdb

from calscore.jobs.warehouse.connection import writer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from synthetic_warehouse import FIRST_NIGHT, build_warehouse  # noqa: E402  (bench/ is not a package)


def test_a_run_past_midnight_keeps_its_rows_on_its_night(tmp_path):
    spec = build_warehouse(tmp_path, 10_000, schema=8)
    with duckdb.connect(str(spec.warehouse.path)) as con:
        # night 0's run (started 22:00) wrote its last 50 rows after midnight; 10 rows name a run the ledger lost
        con.execute("update predictions set scored_at = scored_at + interval 3 hour where row_id in (select row_id"
                    " from predictions where run_id = 'run-score-0' order by row_id limit 50)")
        con.execute("update predictions set run_id = 'run-unknown', scored_at = scored_at + interval 3 hour"
                    " where row_id in (select row_id from predictions where run_id = 'run-score-1'"
                    " order by row_id limit 10)")
    with writer(spec.warehouse.path) as con:  # migrates, as `calscore init` or the next run does
        nights = dict(con.execute("select run_id, list(distinct night) from predictions group by run_id").fetchall())
        after_midnight = con.execute("select count(*) from predictions where run_id = 'run-score-0'"
                                     " and cast(scored_at at time zone 'UTC' as date) > ?", [FIRST_NIGHT]).fetchone()[0]
    assert after_midnight == 50
    assert nights["run-score-0"] == [FIRST_NIGHT]
    assert nights["run-unknown"] == [FIRST_NIGHT + timedelta(days=2)]  # night 1's rows, 3 hours on: the next UTC day
    assert all(len(days) == 1 for days in nights.values())
