-- The task's failed batches with their errors, by uri.
select uri, error
from batches
where task_name = $task_name and status = 'failed'
order by uri
