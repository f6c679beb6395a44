-- Which rows in the review bucket still wait for a label, least confident first?
with predictions_current as (

    select * from predictions_current

),

unlabeled_review as (

    select *
    from predictions_current
    -- 'review' is the default bucket name for rows a person should check
    where bucket = 'review'
        and not has_label

),

final as (

    select
        task_name,
        task_version,
        row_number() over (
            partition by task_version order by decision_confidence, scored_at, row_id
        ) as queue_position,
        row_id,
        night,
        segment,
        label as predicted_label,
        decision_confidence,
        raw_label,
        raw_confidence,
        coverage,
        calibrator_version,
        scored_at,
        text

    from unlabeled_review

)

select * from final
