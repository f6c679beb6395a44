-- The task_version's predictions an audit sample is drawn from, in row id order (so a seed draws the same sample).
select row_id, bucket, text, segment
from predictions
where task_version = $task_version
order by row_id
