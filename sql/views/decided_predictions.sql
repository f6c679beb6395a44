-- What is each prediction's decision now (the newest re-applied calibrator's, else the one made at scoring time), with the raw scores and text it was made on?
-- The newest re-applied decision is copied onto its prediction by the writer of decisions (migration 004), so
-- this is one scan of predictions, whatever the number of re-applications. No import CTE here: over the table
-- itself, DuckDB filters `night` inside the scan and reads the other columns of matching rows only.
with final as (

    select
        task_name,
        task_version,
        row_id,
        night,  -- the scoring run's logical date (migration 009)
        scored_at,
        segment,
        raw_label,
        raw_confidence,
        coverage,
        coalesce(reapplied_label, label) as label,
        coalesce(reapplied_confidence, confidence) as confidence,
        -- every label's calibrated probability (NULL: no calibrator decided, or decided before migration 009)
        case when reapplied_at is null then calibrated_probs
            else from_json(reapplied_calibrated_probs_json, '"MAP(VARCHAR, DOUBLE)"') end as calibrated_probs,
        -- the number the bucket thresholds were applied to (raw when no calibrator existed)
        coalesce(reapplied_confidence, case when bucket_basis = 'raw' then raw_confidence else confidence end)
            as decision_confidence,
        coalesce(reapplied_bucket, bucket) as bucket,
        case when reapplied_at is null then bucket_reason else reapplied_bucket_reason end as bucket_reason,
        case when reapplied_at is null then bucket_basis else 'calibrated' end as bucket_basis,
        coalesce(reapplied_calibrator_version, calibrator_version) as calibrator_version,
        case when reapplied_at is null then 'scoring' else 'reapplied' end as decided_by,
        coalesce(reapplied_at, scored_at) as decided_at,
        coalesce(reapplied_run_id, run_id) as decision_run_id,
        label_logprobs,
        text

    from predictions

)

select * from final
