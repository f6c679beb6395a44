-- Fill the tables of migration 016 from the predictions as they stand (at ten million predictions with 2% labeled:
-- ~5 s of CPU for the copy, ~3 s for the counts). The writers keep them from here on.
INSERT INTO labeled_predictions BY NAME
SELECT *
FROM predictions
WHERE EXISTS (
    SELECT 1
    FROM labels
    WHERE labels.task_name = predictions.task_name
        AND labels.row_id = predictions.row_id
        AND labels.superseded_at IS NULL
);

INSERT INTO decision_counts BY NAME
WITH decided AS (
    -- each row's current decision, as the view decided_predictions reads it
    SELECT
        task_name,
        task_version,
        night,
        coalesce(segment, '(none)') AS segment,
        coalesce(reapplied_bucket, bucket) AS bucket,
        coalesce(CASE WHEN reapplied_at IS NULL THEN bucket_reason ELSE reapplied_bucket_reason END = 'off_format',
                 false) AS off_format,
        coalesce(reapplied_confidence, CASE WHEN bucket_basis = 'raw' THEN raw_confidence ELSE confidence END)
            AS decision_confidence,
        cast(floor(decision_confidence * 100) AS INTEGER) AS near_hundredths
    FROM predictions
)
SELECT
    task_name,
    task_version,
    night,
    segment,
    bucket,
    off_format,
    coalesce(
        near_hundredths
            + CASE
                WHEN decision_confidence >= (near_hundredths + 1) / 100 THEN 1
                WHEN decision_confidence < near_hundredths / 100 THEN -1
                ELSE 0
            END,
        -1) AS hundredths,
    count(*) AS rows,
    coalesce(sum(decision_confidence), 0) AS confidence_sum
FROM decided
GROUP BY ALL;
