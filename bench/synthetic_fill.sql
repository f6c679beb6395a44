-- Fill a warehouse (schema of migration 003) from synthetic_rows as the flows would have: the first
-- `calibrated_from` nights scored before any calibrator (raw buckets), the champion fitted on their labels
-- and re-applied to them (decisions), every later night scored with it. Settings (DuckDB variables): task_name,
-- task_version, champion, temperature (the champion's), calibrated_from.
create or replace temp view synthetic_decided as
with scored as (

    select
        *,
        -- temperature scaling keeps the argmax: one label for raw and calibrated
        case when model_log_odds >= 0 then 'positive' else 'negative' end as predicted,
        1 / (1 + exp(-abs(model_log_odds))) as raw_confidence,
        1 / (1 + exp(-abs(model_log_odds) / getvariable('temperature'))) as calibrated_confidence,
        night_index >= getvariable('calibrated_from') as scored_calibrated

    from synthetic_rows

),

final as (

    select
        *,
        case when scored_calibrated then calibrated_confidence else raw_confidence end as scoring_confidence,
        coverage < 0.5 as off_format,
        -- the demo's buckets (auto >= 0.90, review >= 0.70, manual_check >= 0.50, manual), off-format to manual
        case
            when coverage < 0.5 then 'manual'
            when scoring_confidence >= 0.9 then 'auto'
            when scoring_confidence >= 0.7 then 'review'
            when scoring_confidence >= 0.5 then 'manual_check'
            else 'manual'
        end as scoring_bucket,
        case
            when coverage < 0.5 then 'manual'
            when calibrated_confidence >= 0.9 then 'auto'
            when calibrated_confidence >= 0.7 then 'review'
            when calibrated_confidence >= 0.5 then 'manual_check'
            else 'manual'
        end as champion_bucket

    from scored

)

select * from final;

insert into predictions (
    task_version, row_id, task_name, run_id, batch_uri, batch_hash, model, text, label_logprobs, coverage,
    total_probability, raw_label, raw_confidence, truncated, calibrator_version, label, confidence, bucket,
    bucket_basis, bucket_reason, segment, metadata, scored_at, written_at
)
select
    getvariable('task_version'),
    row_id,
    getvariable('task_name'),
    'run-score-' || night_index,
    'batches/night-' || lpad(cast(night_index as varchar), 3, '0') || '.parquet',
    'hash-' || night_index,
    'example/synthetic@0',
    text,
    map(['positive', 'negative'], [ln(coverage) - ln(1 + exp(-model_log_odds)), ln(coverage) - ln(1 + exp(model_log_odds))]),
    coverage,
    coverage * raw_confidence,
    predicted,
    raw_confidence,
    false,
    case when scored_calibrated then getvariable('champion') end,
    predicted,
    case when scored_calibrated then calibrated_confidence end,
    scoring_bucket,
    case when scored_calibrated then 'calibrated' else 'raw' end,
    case when off_format then 'off_format' end,
    segment,
    json_object('category', segment),
    scored_at,
    scored_at + interval 1 hour
from synthetic_decided;

insert into decisions (
    task_version, row_id, calibrator_version, label, confidence, bucket, bucket_reason, run_id, decided_at
)
select
    getvariable('task_version'), row_id, getvariable('champion'), predicted, calibrated_confidence, champion_bucket,
    case when off_format then 'off_format' end, 'run-recalibrate',
    timestamptz '2025-03-01 20:00:00+00' + to_days(cast(getvariable('calibrated_from') as integer))
from synthetic_decided
where not scored_calibrated;

insert into labels (task_name, row_id, label, source, inclusion_prob, imported_at, superseded_at, import_id)
select
    getvariable('task_name'), row_id, true_label, 'audit', getvariable('labeled_share'),
    scored_at + interval 14 hour, null, 'audit-' || night_index
from synthetic_rows
where audited;

-- the champion saw the labels of the nights scored before it
insert into calibrator_fit_rows (version, row_id)
select getvariable('champion'), row_id
from synthetic_rows
where audited and night_index < getvariable('calibrated_from');

insert into batches (
    task_name, uri, content_hash, task_version, status, rows_in, rows_scored, rows_quarantined, run_id, finished_at
)
select
    getvariable('task_name'), batch_uri, batch_hash, getvariable('task_version'), 'done', count(*), count(*), 0,
    any_value(run_id), max(written_at)
from predictions
group by batch_uri, batch_hash;

insert into runs (run_id, task_name, task_version, kind, status, started_at, heartbeat_at, finished_at, labels)
select
    run_id, getvariable('task_name'), getvariable('task_version'), 'score', 'completed', min(scored_at),
    max(written_at), max(written_at), ['positive', 'negative']
from predictions
group by run_id;

drop view synthetic_decided;
drop view synthetic_rows;
