-- Each pulled audit label's inclusion probability (registered as `pulled`: row_id, sample_id), from the sample it
-- was pushed from: kept in the warehouse, never sent to Label Studio; NULL when that sample is not here.
select p.row_id, a.inclusion_prob
from pulled p
left join audit_samples a
    on a.task_name = $task_name and a.sample_id = p.sample_id and a.row_id = p.row_id
