-- What is each row's ground truth now, its design, and how much does its label count for all rows (1 / inclusion probability)?
with labels as (

    select * from labels

),

current as (

    select
        * exclude (design),
        -- a label written without a design (before migration 008 or by hand) is what it was then
        coalesce(design, case when inclusion_prob is not null then 'audit' else 'convenience' end) as design
    from labels
    where superseded_at is null
    -- one current label per row by design; the newest wins should an import ever race
    qualify row_number() over (partition by task_name, row_id order by imported_at desc) = 1

),

final as (

    select
        task_name,
        row_id,
        label as true_label,
        source as label_source,
        inclusion_prob,
        design as label_design,
        -- audit and random samples certify (known inclusion probabilities); convenience labels never do
        design in ('audit', 'random') as is_audit_label,
        -- a convenience label (e.g. from the review queue) has no design weight: 1
        case when design = 'convenience' then 1.0 else 1.0 / coalesce(inclusion_prob, 1.0) end as label_weight,
        imported_at as label_imported_at

    from current

)

select * from final
