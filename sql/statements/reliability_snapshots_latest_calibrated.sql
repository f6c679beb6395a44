-- The task_version's newest reliability figures of calibrated scores over all rows.
select created_at, n, accuracy, ece, nll
from reliability_snapshots
where task_version = $task_version and scores = 'calibrated' and segment = 'all'
order by created_at desc
limit 1
