-- Record a batch's outcome in the ledger, replacing an earlier one for the same task, uri and content hash.
insert or replace into batches (
    task_name, uri, content_hash, task_version, status,
    rows_in, rows_scored, rows_quarantined, run_id, error, finished_at
)
values (
    $task_name, $uri, $content_hash, $task_version, $status,
    $rows_in, $rows_scored, $rows_quarantined, $run_id, $error, $finished_at
)
