-- Quarantine a staged batch's unscorable rows (registered as `staged_quarantine`); a re-run adds nothing.
insert into quarantine (
    task_name, task_version, batch_uri, batch_hash, row_index, row_id, reason, detail, run_id, quarantined_at
)
select
    $task_name, $task_version, $batch_uri, $batch_hash, row_index, row_id, reason, detail, $run_id, $quarantined_at
from staged_quarantine
on conflict do nothing
