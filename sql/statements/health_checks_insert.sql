-- Record one health check of a scoring run, on the run's night (its logical date; the UTC day without a run).
insert into health_checks (
    task_name, task_version, run_id, night, check_name, value, reference, threshold, status, detail,
    reference_rows, created_at
)
select
    $task_name, $task_version, $run_id,
    coalesce((select night from runs where run_id = $run_id),
             date '1970-01-01' + cast(epoch_ms($created_at::timestamptz) // 86400000 as integer)),
    $check_name, $value, $reference, $threshold, $status, $detail, $reference_rows, $created_at
