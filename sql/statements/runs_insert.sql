-- Record a new running run (it now holds the task's lock) with what it scores with.
insert into runs (
    run_id, task_name, task_version, kind, status, started_at, heartbeat_at, host, pid,
    model, model_fingerprint, dtype, device, labels, package_versions, night
)
values (
    $run_id, $task_name, $task_version, $kind, 'running', $now, $now, $host, $pid,
    $model, $model_fingerprint, $dtype, $device, $labels, $package_versions, $night
)
