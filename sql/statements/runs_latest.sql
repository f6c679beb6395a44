-- The task's most recently started run.
select run_id, kind, status, started_at, finished_at
from runs
where task_name = $task_name
order by started_at desc
limit 1
