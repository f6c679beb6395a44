-- The task version's predictions (one night, or all when $night is NULL; with $up_to every night up to it, counted per night) counted by segment, bucket, off-format and hundredth of decision confidence: the report's volumes, summed from decision_counts (migration 016), never a scan of the predictions.
select
    case when $up_to then night end as night,  -- one group per night only when the nights are wanted
    segment,
    bucket,
    off_format,
    hundredths,  -- h / 100 <= decision confidence < (h + 1) / 100, compared exactly as `confidence >= threshold` is
    cast(sum(rows) as bigint) as rows
from decision_counts
where task_version = $task_version
    and (cast($night as date) is null or night = cast($night as date)
        or ($up_to and night < cast($night as date)))
group by all
