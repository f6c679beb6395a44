-- A session macro: the predictions a night's health checks compare, as side = 'tonight' (the run's rows)
-- or 'reference' (the champion's fit rows; with no champion, the task_version's rows scored in the days before).
create or replace temp macro health_rows(tv, tonight_run, champ, since_ts) as table
select
    case when p.run_id = tonight_run then 'tonight' else 'reference' end as side,
    p.row_id,
    p.coverage,
    p.label_logprobs
from predictions p
where p.task_version = tv
    and (
        p.run_id = tonight_run
        or (champ is not null and p.row_id in (select f.row_id from calibrator_fit_rows f where f.version = champ))
        or (champ is null and p.run_id <> tonight_run and p.scored_at >= since_ts)
    )
