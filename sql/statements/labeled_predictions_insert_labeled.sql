-- Copy the predictions (every task version) of the rows an import has just labeled (the changed rows of `resolved`) to labeled_predictions (migration 016), unless a copy is there already (a corrected label: its predictions did not change).
insert into labeled_predictions by name
select *
from predictions
where task_name = $task_name
    and row_id in (select row_id from resolved where changed)
    and not exists (
        select 1
        from labeled_predictions copied
        where copied.task_version = predictions.task_version and copied.row_id = predictions.row_id
    )
