-- Copy the predictions (every task version) of the rows an import has just labeled (the changed rows of `resolved`) to labeled_predictions (migration 016), unless a copy is there already (a corrected label: its predictions did not change).
-- Their table rows are found first from two columns, then every column is read for those rows only: 1.3 s of CPU for
-- 2,000 labels at ten million predictions, against 2.1 s for one scan filtered by row id, which decompresses every
-- column of every block holding one of them.
insert into labeled_predictions by name
select *
from predictions
where rowid in (
        select rowid
        from predictions
        where task_name = $task_name and row_id in (select row_id from resolved where changed)
    )
    and not exists (
        select 1
        from labeled_predictions copied
        where copied.task_version = predictions.task_version and copied.row_id = predictions.row_id
    )
