-- Which rows in the review bucket still wait for a label, least confident first?
-- For the head of the queue filter on the position (`where queue_position <= 50`): DuckDB then keeps the 50
-- least confident rows per task version in one pass and fetches the rest of those rows by their place in the
-- table, instead of numbering the whole queue. That place (rowid) is only visible on the table itself, which is
-- why the current decision is read here from predictions with the expressions of decided_predictions.
with current_labels as (

    select task_name, row_id from current_labels

),

decided as (

    select
        rowid as table_row,
        task_name,
        task_version,
        row_id,
        coalesce(reapplied_bucket, bucket) as bucket,
        coalesce(reapplied_confidence, case when bucket_basis = 'raw' then raw_confidence else confidence end)
            as decision_confidence,
        scored_at

    from predictions

),

unlabeled_review as (

    select *
    from decided
    -- 'review' is the default bucket name for rows a person should check
    where bucket = 'review'
        and not exists (
            select 1
            from current_labels
            where current_labels.task_name = decided.task_name
                and current_labels.row_id = decided.row_id
        )

),

queued as (

    select
        table_row,
        -- one sort key (a struct orders field by field), so that DuckDB can turn queue_position <= N into a top-N
        row_number() over (
            partition by task_version order by (decision_confidence, scored_at, row_id)
        ) as queue_position,
        decision_confidence

    from unlabeled_review

),

queued_rows as (

    -- read by rowid: only the queued rows are fetched
    select
        rowid as table_row,
        task_name,
        task_version,
        row_id,
        night,
        segment,
        coalesce(reapplied_label, label) as predicted_label,
        raw_label,
        raw_confidence,
        coverage,
        coalesce(reapplied_calibrator_version, calibrator_version) as calibrator_version,
        scored_at,
        text

    from predictions

),

final as (

    select
        queued_rows.task_name,
        queued_rows.task_version,
        queued.queue_position,
        queued_rows.row_id,
        queued_rows.night,
        queued_rows.segment,
        queued_rows.predicted_label,
        queued.decision_confidence,
        queued_rows.raw_label,
        queued_rows.raw_confidence,
        queued_rows.coverage,
        queued_rows.calibrator_version,
        queued_rows.scored_at,
        queued_rows.text

    from queued
    inner join queued_rows
        on queued_rows.table_row = queued.table_row

)

select * from final
