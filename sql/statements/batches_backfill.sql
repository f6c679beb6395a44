-- The task's batches done since a time under another task_version: what an explicit rescore would score again.
select uri, content_hash
from batches
where task_name = $task_name
    and status = 'done'
    and finished_at >= $since
    and task_version <> $task_version
order by uri
