-- The task version's predictions (one night, or all when $night is NULL; with $up_to every night up to it, counted per night) counted by segment, bucket, off-format and hundredth of decision confidence: the report's volumes, without a row leaving DuckDB.
with decided as (

    select
        case when $up_to then night end as night,  -- one group per night only when the nights are wanted
        coalesce(segment, '(none)') as segment,
        bucket,
        coalesce(bucket_reason = 'off_format', false) as off_format,
        decision_confidence,
        cast(floor(decision_confidence * 100) as integer) as near_hundredths
    from current_decisions
    where task_version = $task_version
        and (cast($night as date) is null or night = cast($night as date)
            or ($up_to and night < cast($night as date)))

)

select
    night,
    segment,
    bucket,
    off_format,
    -- the h with h / 100 <= confidence < (h + 1) / 100, compared exactly as `confidence >= threshold` is
    -- (decision_confidence * 100 can round across a whole number)
    near_hundredths
        + case
            when decision_confidence >= (near_hundredths + 1) / 100 then 1
            when decision_confidence < near_hundredths / 100 then -1
            else 0
        end as hundredths,
    count(*) as rows
from decided
group by all
