-- Resolve the incoming labels (registered as `incoming`) into temp table `resolved`, with each row's current
-- label and design; `changed`: a new label for the row, or a different label or design than its current one.
-- $design: audit | random | convenience, or NULL for today's rule (audit when an inclusion probability is known).
create temp table resolved as
with probed as (
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
        ) as inclusion_prob
    from incoming i
),
designed as (
    select
        row_id,
        label,
        inclusion_prob,
        coalesce(
            cast($design as varchar), case when inclusion_prob is not null then 'audit' else 'convenience' end
        ) as design
    from probed
)
select
    d.row_id,
    d.label,
    -- convenience labels carry no weight
    case when d.design = 'convenience' then null else d.inclusion_prob end as inclusion_prob,
    d.design,
    l.label as current_label,
    coalesce(l.design, case when l.inclusion_prob is not null then 'audit' else 'convenience' end) as current_design,
    l.label is null or d.label <> l.label
        or d.design <> coalesce(l.design, case when l.inclusion_prob is not null then 'audit' else 'convenience' end)
        as changed
from designed d
left join labels l
    on l.task_name = $task_name and l.row_id = d.row_id and l.superseded_at is null
