-- The task's current labels joined with the task_version's stored raw scores, in arrival order:
-- import time, then scoring time (ties beyond these are broken at random by promotion.arrival_order).
select p.row_id, p.label_logprobs, l.label, l.inclusion_prob, l.imported_at, p.scored_at, p.segment, p.agreement,
    p.samples
from labels l
join predictions p on p.row_id = l.row_id and p.task_version = $task_version
where l.task_name = $task_name and l.superseded_at is null
order by l.imported_at, p.scored_at, p.row_id
