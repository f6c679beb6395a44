-- The staged predictions (registered as `staged_predictions`) of rows this task_version has not scored yet, as they will be written, into the temporary table `new_predictions` (predictions' columns).
-- By name: the staged file carries the predictions columns (plus its row_index), whatever their order.
-- The night is the writing run's logical date (a staged result reused from a crashed run belongs to the re-run).
insert into new_predictions by name
select
    * exclude (row_index),
    $written_at as written_at,
    coalesce((select night from runs where run_id = $run_id),
             date '1970-01-01' + cast(epoch_ms(s.scored_at) // 86400000 as integer)) as night,
    -- a review-bucket row joins the review queue with its decision confidence, unless its label came first
    -- (migration 013)
    case when s.bucket = 'review' and not exists (
        select 1 from labels l where l.task_name = s.task_name and l.row_id = s.row_id and l.superseded_at is null
    ) then case when s.bucket_basis = 'raw' then s.raw_confidence else s.confidence end end as queue_confidence
from staged_predictions s
where not exists (  -- the batch's ids scored before (staged_scored_before), not a scan of every prediction
    select 1
    from scored_before b
    where b.task_version = s.task_version and b.row_id = s.row_id
)
