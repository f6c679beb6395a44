-- The task_version's newest predictions scored since a time whose current decision is not yet calibrator
-- $calibrator_version's, at most $limit of them: one chunk of a re-application (rows a committed chunk decided
-- drop out, so a job killed between chunks resumes where it stopped).
select row_id, label_logprobs, coverage, agreement, samples  -- agreement: read by a combined calibrator
from predictions
where task_version = $task_version
    and scored_at >= $since
    and coalesce(reapplied_calibrator_version, calibrator_version, '') <> $calibrator_version
order by scored_at desc, row_id
limit $limit
