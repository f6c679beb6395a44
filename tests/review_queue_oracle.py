"""The review queue as it was read before migration 013 kept it at write time, to check the new one against.

Before, the view decided at read time which rows wait (current bucket 'review', no current label) and numbered
each task version's queue (queue_position, least confident first); review_next kept positions 1 to 50. Written
here on the views that decide a row's current decision and label (decided_predictions, current_labels), which the
change did not touch, so it is an independent computation of the same rows.
"""
from __future__ import annotations

import duckdb

OLD_REVIEW_QUEUE = """
    select
        d.task_name,
        d.task_version,
        row_number() over (
            partition by d.task_version order by d.decision_confidence, d.scored_at, d.row_id
        ) as queue_position,
        d.row_id,
        d.night,
        d.segment,
        d.label as predicted_label,
        d.decision_confidence,
        d.raw_label,
        d.raw_confidence,
        d.coverage,
        d.calibrator_version,
        d.scored_at,
        d.text
    from decided_predictions d
    where d.bucket = 'review'
        and not exists (
            select 1 from current_labels l where l.task_name = d.task_name and l.row_id = d.row_id
        )
"""

OLD_REVIEW_NEXT = f"""
    select
        task_name, queue_position, row_id, night, segment, predicted_label,
        round(decision_confidence, 3) as confidence, left(text, 120) as text_start
    from ({OLD_REVIEW_QUEUE})
    where queue_position <= 50
    order by task_name, queue_position
"""


def old_queue(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """The rows the old view held, without their position, in queue order."""
    return con.sql(f"select * exclude (queue_position) from ({OLD_REVIEW_QUEUE})"
                   " order by task_version, queue_position").fetchall()


def new_queue(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """The rows review_queue holds, in queue order (each task version's least confident first)."""
    return con.sql("select * from review_queue order by task_version, decision_confidence, scored_at, row_id"
                   ).fetchall()


def keep_queue(con: duckdb.DuckDBPyConnection) -> None:
    """Give a warehouse filled straight into its tables (as no calscore writer fills it) the queue the writers
    keep: queue_confidence on every waiting row, NULL on the others."""
    con.execute("update predictions set queue_confidence = null")
    con.execute(f"""
        update predictions
        set queue_confidence = waiting.decision_confidence
        from (select task_version, row_id, decision_confidence from ({OLD_REVIEW_QUEUE})) as waiting
        where predictions.task_version = waiting.task_version and predictions.row_id = waiting.row_id
    """)
