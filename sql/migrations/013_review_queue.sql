-- The review queue, kept at write time: a prediction that waits for a person (its current decision in the bucket
-- named 'review', and no current label for its row) carries the confidence it waits with; every other row NULL.
-- Reading the queue is then a scan of this one column: count(*) reads nothing else, and `order by
-- decision_confidence ... limit n` is a top-N that fetches the other columns (the text too) of the n rows it keeps.
-- Deciding at read time which review-bucket rows had no label joined every one of them to the labels, and numbering
-- the queue sorted all of it under every `limit` (20 s and 1.6 GB at ten million predictions).
-- Each writer that moves a row in or out keeps it, in the same transaction: scoring (predictions_insert_new), the
-- re-application of a champion (predictions_copy_reapplied) and the label import (predictions_dequeue_labeled).
-- A label is never withdrawn, only superseded by another, so a labeled row never returns to the queue.
ALTER TABLE predictions ADD COLUMN queue_confidence DOUBLE;

UPDATE predictions
SET queue_confidence = coalesce(reapplied_confidence, CASE WHEN bucket_basis = 'raw' THEN raw_confidence ELSE confidence END)
WHERE coalesce(reapplied_bucket, bucket) = 'review'
    AND NOT EXISTS (
        SELECT 1
        FROM labels
        WHERE labels.task_name = predictions.task_name
            AND labels.row_id = predictions.row_id
            AND labels.superseded_at IS NULL
    );
