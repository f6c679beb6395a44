-- What is each row's ground truth now, and how much does its label count for all rows (1 / inclusion probability)?
with labels as (

    select * from labels

),

current as (

    select *
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
        inclusion_prob is not null as is_audit_label,
        -- unknown inclusion probability (e.g. a review-queue label): weight 1
        1.0 / coalesce(inclusion_prob, 1.0) as label_weight,
        imported_at as label_imported_at

    from current

)

select * from final
