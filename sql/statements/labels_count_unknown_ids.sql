-- Count the resolved incoming labels whose row id no prediction of the task has yet.
select count(*)
from resolved r
where not exists (
    select 1
    from predictions p
    where p.task_name = $task_name and p.row_id = r.row_id
)
