-- One chunk of a re-application: the task_version's predictions scored since a time, among the table rows
-- [$lower, $upper) (rowid: write order, so a chunk reads its own row groups whatever the table holds), whose current
-- decision is not yet calibrator $calibrator_version's, newest written first, at most $limit of them. Rows a
-- committed chunk decided drop out, so a job killed between chunks resumes where it stopped.
select rowid as table_row, row_id, label_logprobs, coverage, agreement, samples  -- agreement: read by a combined calibrator
from predictions
where rowid >= $lower and rowid < $upper
    and task_version = $task_version
    and scored_at >= $since
    and coalesce(reapplied_calibrator_version, calibrator_version, '') <> $calibrator_version
order by rowid desc
limit $limit
