-- How many rows went to each bucket each night, how confident were they, and how accurate on the labeled ones?
with predictions_current as (

    select * from predictions_current

),

per_bucket as (

    select
        task_name,
        task_version,
        night,
        bucket,
        count(*) as rows,
        avg(decision_confidence) as mean_confidence,
        count(*) filter (where bucket_reason = 'off_format') as off_format_rows,
        count(*) filter (where is_labeled) as labeled_rows,
        count(*) filter (where is_correct) as correct_rows,
        -- weighted by 1 / inclusion probability: an estimate for all the bucket's rows
        sum(label_weight * cast(is_correct as double)) / nullif(sum(label_weight) filter (where is_labeled), 0)
            as weighted_accuracy

    from predictions_current
    group by all

),

final as (

    select
        task_name,
        task_version,
        night,
        bucket,
        rows,
        rows / sum(rows) over (partition by task_version, night) as share_of_night,
        mean_confidence,
        off_format_rows,
        labeled_rows,
        correct_rows,
        correct_rows / nullif(labeled_rows, 0) as labeled_accuracy,
        weighted_accuracy

    from per_bucket

)

select * from final
