-- The head of the review queue (unlabeled review-bucket rows, least confident first), to push to Label Studio.
select
    row_id,
    cast(null as varchar) as sample_id,
    'convenience' as design,
    text,
    predicted_label,
    decision_confidence as confidence,
    calibrator_version
from review_queue
where task_version = $task_version
order by decision_confidence, scored_at, row_id
limit $n
