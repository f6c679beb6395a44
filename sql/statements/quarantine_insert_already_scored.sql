-- Quarantine staged predictions (registered as `staged_predictions`) of rows this task_version scored before
-- (`scored_before`, filled per batch by staged_scored_before).
insert into quarantine (
    task_name, task_version, batch_uri, batch_hash, row_index, row_id, reason, detail, run_id, quarantined_at
)
select
    s.task_name, s.task_version, s.batch_uri, s.batch_hash, s.row_index, s.row_id,
    $reason, 'already scored for this task_version', $run_id, $quarantined_at
from staged_predictions s
join scored_before using (task_version, row_id)  -- staged_scored_before: the batch's ids scored before
on conflict do nothing
