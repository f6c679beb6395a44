-- Count the predictions of `counted` (registered: predictions' columns) into decision_counts by their current decision, times $sign: -1 takes rows out (a re-application, before it decides them again), +1 puts them in.
with decided as (

    -- each row's current decision, as the view decided_predictions reads it
    select
        task_name,
        task_version,
        night,
        coalesce(segment, '(none)') as segment,
        coalesce(reapplied_bucket, bucket) as bucket,
        coalesce(case when reapplied_at is null then bucket_reason else reapplied_bucket_reason end = 'off_format',
                 false) as off_format,
        coalesce(reapplied_confidence, case when bucket_basis = 'raw' then raw_confidence else confidence end)
            as decision_confidence,
        cast(floor(decision_confidence * 100) as integer) as near_hundredths
    from counted

)

insert into decision_counts by name
select
    task_name,
    task_version,
    night,
    segment,
    bucket,
    off_format,
    -- the h with h / 100 <= confidence < (h + 1) / 100, compared exactly as `confidence >= threshold` is; -1: none
    coalesce(
        near_hundredths
            + case
                when decision_confidence >= (near_hundredths + 1) / 100 then 1
                when decision_confidence < near_hundredths / 100 then -1
                else 0
            end,
        -1) as hundredths,
    $sign * count(*) as rows,
    $sign * coalesce(sum(decision_confidence), 0) as confidence_sum
from decided
group by all
on conflict do update set rows = rows + excluded.rows, confidence_sum = confidence_sum + excluded.confidence_sum
