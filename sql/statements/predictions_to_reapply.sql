-- The task_version's predictions scored since a time that a calibrator has not decided, at scoring time or re-applied.
select row_id, label_logprobs, coverage, agreement, samples  -- agreement: read by a combined calibrator
from predictions p
where task_version = $task_version
    and scored_at >= $since
    and coalesce(calibrator_version, '') <> $calibrator_version
    and not exists (
        select 1
        from decisions d
        where d.task_version = p.task_version
            and d.row_id = p.row_id
            and d.calibrator_version = $calibrator_version
    )
