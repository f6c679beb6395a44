-- Record one health check of a scoring run.
insert into health_checks (
    task_name, task_version, run_id, night, check_name, value, reference, threshold, status, detail,
    reference_rows, created_at
)
values (
    $task_name, $task_version, $run_id, $night, $check_name, $value, $reference, $threshold, $status, $detail,
    $reference_rows, $created_at
)
