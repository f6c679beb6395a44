"""The tables kept beside `predictions` (migration 016), in the transaction of each write that changes them.

    count_decisions(con, rows, sign)   # decision_counts: rows (predictions' columns) in (+1) or out (-1)

`labeled_predictions` copies the predictions of labeled rows and `decision_counts` counts every prediction by its
current decision, so the reads that judge labels or count volumes never scan every prediction. The writers keep
them: scoring (`jobs/warehouse/writer.py`), the label import (`jobs/labels/importing.py`) and the re-application
(`jobs/calibrators/reapply.py`); each change commits with the rows it copies or counts, or not at all.
"""
from __future__ import annotations

from calscore.jobs.warehouse.statements import statement


def count_decisions(con, rows, sign: int) -> None:
    """Add `rows` (an Arrow table or a DuckDB relation with predictions' columns) to decision_counts by their
    current decision (`sign` +1), or take them out (-1); a group left with no row goes."""
    con.register("counted", rows)
    con.execute(statement("decision_counts_add"), {"sign": sign})
    con.unregister("counted")
    if sign < 0:
        con.execute("DELETE FROM decision_counts WHERE rows = 0")
