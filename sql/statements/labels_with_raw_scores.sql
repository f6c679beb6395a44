-- The task's current labels joined with the task_version's stored raw scores: what a recalibration fits and
-- cross-fits on, with each label's design (a sampling design certifies), arrival time and the row's night.
select
    p.row_id,
    p.label_logprobs,
    p.coverage,
    l.label,
    l.inclusion_prob,
    -- a label written without a design (before migration 008 or by hand) is what it was then
    coalesce(l.design, case when l.inclusion_prob is not null then 'audit' else 'convenience' end) as design,
    l.imported_at,
    p.scored_at,
    p.night,
    p.segment,
    p.agreement,
    p.samples
from labels l
join labeled_predictions p on p.row_id = l.row_id and p.task_version = $task_version  -- the labeled rows' copy (migration 016)
where l.task_name = $task_name and l.superseded_at is null
order by l.imported_at, p.scored_at, p.row_id
