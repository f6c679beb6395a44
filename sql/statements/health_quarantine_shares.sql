-- Quarantined share of the rows read: the run's batches ('tonight') and every batch done before it ('reference').
select
    case when run_id = $run_id then 'tonight' else 'reference' end as side,
    sum(rows_quarantined) / nullif(sum(rows_in), 0) as share,
    sum(rows_in) as rows_in
from batches
where task_name = $task_name and status = 'done' and rows_in is not null
group by side
