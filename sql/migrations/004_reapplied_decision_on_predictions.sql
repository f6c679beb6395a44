-- A copy of each prediction's newest re-applied decision on its own row, so that reading the
-- current decision of ten million rows is one scan of predictions, not a join with every
-- re-application ever made. `decisions` stays the append-only record; the columns are kept by
-- the writer of decisions (calscore.jobs.calibrators.recalibrate.write_decisions), in the same
-- transaction. NULL: no calibrator was re-applied, the decision made at scoring time is current.
ALTER TABLE predictions ADD COLUMN reapplied_calibrator_version VARCHAR;
ALTER TABLE predictions ADD COLUMN reapplied_label VARCHAR;
ALTER TABLE predictions ADD COLUMN reapplied_confidence DOUBLE;
ALTER TABLE predictions ADD COLUMN reapplied_bucket VARCHAR;
ALTER TABLE predictions ADD COLUMN reapplied_bucket_reason VARCHAR;
ALTER TABLE predictions ADD COLUMN reapplied_at TIMESTAMPTZ;
ALTER TABLE predictions ADD COLUMN reapplied_run_id VARCHAR;

-- Existing rows: the newest decision of each, by the rule the views always used.
UPDATE predictions
SET reapplied_calibrator_version = newest.calibrator_version,
    reapplied_label = newest.label,
    reapplied_confidence = newest.confidence,
    reapplied_bucket = newest.bucket,
    reapplied_bucket_reason = newest.bucket_reason,
    reapplied_at = newest.decided_at,
    reapplied_run_id = newest.run_id
FROM (
    SELECT *
    FROM decisions
    QUALIFY row_number() OVER (
        PARTITION BY task_version, row_id ORDER BY decided_at DESC, calibrator_version DESC
    ) = 1
) AS newest
WHERE predictions.task_version = newest.task_version
    AND predictions.row_id = newest.row_id;
