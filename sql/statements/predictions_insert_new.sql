-- Write the staged predictions (registered as `staged_predictions`) of rows this task_version has not scored yet.
-- By name: the staged file carries the predictions columns (plus its row_index), whatever their order.
insert into predictions by name
select * exclude (row_index), $written_at as written_at
from staged_predictions s
where not exists (
    select 1
    from predictions p
    where p.task_version = s.task_version and p.row_id = s.row_id
)
