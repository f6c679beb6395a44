-- Which segment's confidence is furthest from its observed accuracy (weighted labeled rows, each judged by a map that never saw it)?
-- Reads the labeled rows' copy only (labeled_predictions_current, migration 016), never every prediction.
with labeled_predictions_current as (

    select * from labeled_predictions_current

),

labeled as (

    select * from labeled_predictions_current where is_labeled

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
