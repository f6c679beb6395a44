-- Which review-bucket rows still wait for a label, and with which confidence (least confident first: order by decision_confidence)?
-- Which rows wait, and with which confidence, is kept at write time (migration 013: queue_confidence, NULL on every
-- other row), so the view has no join, no window and no ORDER BY, and DuckDB answers each read of it from that one
-- column: count(*) and `limit n` read no other, and `order by decision_confidence, scored_at, row_id limit n` is a
-- top-N that fetches the other columns, text included, of the n rows it keeps. (A row_number() over the queue had
-- DuckDB number all of it under every `limit`; an ORDER BY here would sort all of it under every count(*).)
with predictions as (

    select * from predictions

),

final as (

    select
        task_name,
        task_version,
        row_id,
        night,
        segment,
        -- the current decision's label and calibrator, as decided_predictions reads them
        coalesce(reapplied_label, label) as predicted_label,
        queue_confidence as decision_confidence,
        raw_label,
        raw_confidence,
        coverage,
        coalesce(reapplied_calibrator_version, calibrator_version) as calibrator_version,
        scored_at,
        text

    from predictions
    where queue_confidence is not null

)

select * from final
