-- Resolve the incoming labels (registered as `incoming`) into temp table `resolved`, with each row's current label.
create temp table resolved as
select
    i.row_id,
    i.label,
    -- the file's inclusion probability, else the row's latest audit sample's
    coalesce(
        i.inclusion_prob,
        (
            select a.inclusion_prob
            from audit_samples a
            where a.task_name = $task_name and a.row_id = i.row_id
            order by a.created_at desc
            limit 1
        )
    ) as inclusion_prob,
    l.label as current_label
from incoming i
left join labels l
    on l.task_name = $task_name and l.row_id = i.row_id and l.superseded_at is null
