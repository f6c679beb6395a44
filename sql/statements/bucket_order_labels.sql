-- The certifying held-out labels (audit or random sample) of a task version (one night, or all when $night is NULL) with what bucket order and coverage floor need: bucket, off-format, coverage, decision confidence, correctness, weight.
select
    bucket,
    coalesce(bucket_reason = 'off_format', false) as off_format,
    coverage,
    decision_confidence,
    coalesce(is_correct, false) as is_correct,
    coalesce(label_weight, 1.0) as label_weight
from labeled_predictions_current
where task_version = $task_version
    and is_audit_label
    and (cast($night as date) is null or night = cast($night as date))
order by row_id
