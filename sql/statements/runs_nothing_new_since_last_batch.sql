-- When the task's last batch was written, and how many scoring runs since found nothing new.
with last_batch as (
    select max(finished_at) as at
    from batches
    where task_name = $task_name and status = 'done'
)
select
    last_batch.at,
    count(r.run_id) filter (where r.kind = 'score' and r.status in ('completed', 'completed_with_warnings')
                            and cast(r.summary ->> 'batches_done' as integer) = 0
                            and r.started_at > last_batch.at)
from last_batch
left join runs r on r.task_name = $task_name
group by last_batch.at
