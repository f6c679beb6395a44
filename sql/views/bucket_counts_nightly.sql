-- How many rows went to each bucket each night, how confident were they, and how accurate on the labeled ones?
with decision_counts as (

    select * from decision_counts

),

labeled_predictions_current as (

    select * from labeled_predictions_current

),

per_bucket as (

    -- every row, from the counts kept as rows are decided (migration 016), not a scan of every prediction
    select
        task_name,
        task_version,
        night,
        bucket,
        cast(sum(rows) as bigint) as rows,  -- a sum of BIGINT is a HUGEINT: the count(*) it replaces was a BIGINT
        sum(confidence_sum) / nullif(sum(rows) filter (where hundredths >= 0), 0) as mean_confidence,
        cast(coalesce(sum(rows) filter (where off_format), 0) as bigint) as off_format_rows

    from decision_counts
    group by task_name, task_version, night, bucket

),

labeled as (

    -- the labeled rows only, from their copy (migration 016); each judged in the bucket its held-out (or
    -- out-of-fold) prediction falls in
    select
        task_version,
        night,
        evidence_bucket as bucket,
        count(*) filter (where is_labeled) as labeled_rows,
        count(*) filter (where is_correct) as correct_rows,
        -- weighted by 1 / inclusion probability: an estimate for all the bucket's rows
        sum(label_weight * cast(is_correct as double)) / nullif(sum(label_weight) filter (where is_labeled), 0)
            as weighted_accuracy

    from labeled_predictions_current
    where is_labeled
    group by all

),

final as (

    select
        per_bucket.task_name,
        per_bucket.task_version,
        per_bucket.night,
        per_bucket.bucket,
        per_bucket.rows,
        per_bucket.rows / sum(per_bucket.rows) over (partition by per_bucket.task_version, per_bucket.night)
            as share_of_night,
        per_bucket.mean_confidence,
        per_bucket.off_format_rows,
        coalesce(labeled.labeled_rows, 0) as labeled_rows,
        coalesce(labeled.correct_rows, 0) as correct_rows,
        labeled.correct_rows / nullif(labeled.labeled_rows, 0) as labeled_accuracy,
        labeled.weighted_accuracy

    from per_bucket
    left join labeled
        on per_bucket.task_version = labeled.task_version
        and per_bucket.night = labeled.night
        and per_bucket.bucket = labeled.bucket

)

select * from final
