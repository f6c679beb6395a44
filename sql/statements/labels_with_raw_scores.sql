-- The task's current labels joined with the task_version's stored raw scores, oldest label first.
select p.row_id, p.label_logprobs, l.label, l.inclusion_prob, l.imported_at, p.segment, p.agreement, p.samples
from labels l
join predictions p on p.row_id = l.row_id and p.task_version = $task_version
where l.task_name = $task_name and l.superseded_at is null
order by l.imported_at, p.row_id
