-- Which segment's confidence is furthest from its observed accuracy (weighted labeled rows, each judged by a map that never saw it)?
-- Reads the labeled rows only: under `where is_labeled` DuckDB joins the current labels into the predictions by row
-- id (a Bloom filter of the labels' row ids in the scan), never the labels, fit rows and evidence to every row.
with predictions_current as (

    select * from predictions_current

),

labeled as (

    select * from predictions_current where is_labeled

),

per_segment as (

    select
        task_name,
        task_version,
        coalesce(segment, '(none)') as segment,
        count(*) as labeled_rows,
        sum(label_weight * evidence_confidence) / sum(label_weight) as mean_confidence,
        sum(label_weight * cast(is_correct as double)) / sum(label_weight) as accuracy

    from labeled
    group by all

),

final as (

    select
        *,
        -- positive: the model is overconfident in this segment
        mean_confidence - accuracy as gap

    from per_segment

)

select * from final
order by task_name, abs(gap) desc
