-- Count the resolved incoming labels whose row id no prediction of the task has yet (`resolved_predictions`: the task's predictions of the resolved rows).
select count(*)
from resolved r
where not exists (
    select 1
    from resolved_predictions p
    where p.row_id = r.row_id
)
