"""Re-applied decisions written as a re-application chunk writes them, for tests that name their rows by key."""
from __future__ import annotations

import pyarrow as pa

from calscore.jobs.calibrators.reapply import write_decisions


def write_decisions_by_key(con, decided: pa.Table) -> None:
    """`write_decisions` for decisions keyed by (task_version, row_id) only: their table rows looked up first,
    as the re-application reads them with its rows (in the caller's transaction)."""
    con.register("keyed", decided)
    with_rows = con.sql("select p.rowid as table_row, keyed.* from keyed join predictions p"
                        " using (task_version, row_id)").to_arrow_table()
    con.unregister("keyed")
    assert with_rows.num_rows == decided.num_rows, "every decision names a prediction"
    write_decisions(con, with_rows)
