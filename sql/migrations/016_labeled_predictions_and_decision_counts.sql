-- Two tables kept beside `predictions`, so that what judges labels or counts volumes never reads every prediction.
-- With 2% of the rows labeled, every 2,048-row vector of `predictions` holds ~40 labeled rows, so a query over the
-- labeled rows alone still decompressed every column it read (1.1-1.5 s of CPU and ~400 MB at ten million).
--
-- labeled_predictions: the predictions (every column, every task version) of the rows with a current label. The
-- views labeled_decided_predictions and labeled_predictions_current are decided_predictions and predictions_current
-- over it (jobs/warehouse/views.py). A label is never withdrawn, only superseded, so a row never leaves it.
--
-- decision_counts: every prediction counted once, by its current decision: night, segment, bucket, off-format and
-- the hundredth of its decision confidence (h with h / 100 <= decision_confidence < (h + 1) / 100, exactly as
-- `confidence >= threshold` compares), with the sum of those confidences. No group holds zero rows.
--
-- Each writer keeps both in the transaction that changes what they hold: scoring (a new row's count; its copy when
-- its label came first), the label import (a row's first label copies its predictions) and each re-application
-- chunk (its rows' counts moved to their new decision; their copies replaced). Migration 017 fills them.
-- A migration that adds a column to predictions adds it here too: the writers insert `by name`, so a missing column
-- fails the write instead of dropping the value.
CREATE TABLE labeled_predictions AS SELECT * FROM predictions WITH NO DATA;

CREATE TABLE decision_counts (
    task_name       VARCHAR NOT NULL,
    task_version    VARCHAR NOT NULL,
    night           DATE NOT NULL,
    segment         VARCHAR NOT NULL,  -- '(none)': a row without a segment
    bucket          VARCHAR NOT NULL,
    off_format      BOOLEAN NOT NULL,
    hundredths      INTEGER NOT NULL,  -- -1: no decision confidence (calscore always has one)
    rows            BIGINT NOT NULL,
    confidence_sum  DOUBLE NOT NULL,   -- of decision_confidence: their mean is confidence_sum / rows (hundredths >= 0)
    PRIMARY KEY (task_name, task_version, night, segment, bucket, off_format, hundredths)
);
