-- Copy the new predictions (`new_predictions`) whose row has a current label (it came before the row was scored) to labeled_predictions (migration 016).
insert into labeled_predictions by name
select *
from new_predictions n
where exists (
    select 1 from labels l where l.task_name = n.task_name and l.row_id = n.row_id and l.superseded_at is null
)
