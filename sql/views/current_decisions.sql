-- What is each prediction's decision now: the newest re-applied calibrator's, else the one made at scoring time?
with predictions as (

    select * from predictions

),

decisions as (

    select * from decisions

),

newest_decision as (

    select *
    from decisions
    qualify row_number() over (
        partition by task_version, row_id
        order by decided_at desc, calibrator_version desc
    ) = 1

),

final as (

    select
        predictions.task_name,
        predictions.task_version,
        predictions.row_id,
        -- a night is the UTC day the row was scored
        cast(date_trunc('day', timezone('UTC', predictions.scored_at)) as date) as night,
        predictions.scored_at,
        predictions.segment,
        predictions.raw_label,
        predictions.raw_confidence,
        predictions.coverage,
        coalesce(newest_decision.label, predictions.label) as label,
        case when newest_decision.row_id is null
            then predictions.confidence else newest_decision.confidence end as confidence,
        -- the number the bucket thresholds were applied to (raw when no calibrator existed)
        case
            when newest_decision.row_id is not null then newest_decision.confidence
            when predictions.bucket_basis = 'raw' then predictions.raw_confidence
            else predictions.confidence
        end as decision_confidence,
        case when newest_decision.row_id is null
            then predictions.bucket else newest_decision.bucket end as bucket,
        case when newest_decision.row_id is null
            then predictions.bucket_reason else newest_decision.bucket_reason end as bucket_reason,
        case when newest_decision.row_id is null
            then predictions.bucket_basis else 'calibrated' end as bucket_basis,
        case when newest_decision.row_id is null
            then predictions.calibrator_version else newest_decision.calibrator_version end as calibrator_version,
        case when newest_decision.row_id is null then 'scoring' else 'reapplied' end as decided_by,
        coalesce(newest_decision.decided_at, predictions.scored_at) as decided_at,
        coalesce(newest_decision.run_id, predictions.run_id) as decision_run_id

    from predictions
    left join newest_decision
        on predictions.task_version = newest_decision.task_version
        and predictions.row_id = newest_decision.row_id

)

select * from final
