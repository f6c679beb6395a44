-- The predictions (every task version) of the rows an import resolves (`resolved`) into temp table `resolved_predictions`: each one's table row (rowid), whether its row's label changed and whether it waits in the review queue; one pass over two columns of predictions, which the import's other statements read instead of predictions.
create temp table resolved_predictions as
select
    p.rowid as table_row,
    p.task_version,
    p.row_id,
    r.changed,
    p.queue_confidence is not null as queued
from predictions p
join resolved r on r.row_id = p.row_id
where p.task_name = $task_name
