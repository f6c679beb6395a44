-- How many rows did each night score, and what share went to each bucket?
-- Every night's every row: a full scan by its question, of the narrowest data there is (bucket_counts_nightly:
-- decided_predictions' night, bucket, confidence and off-format columns, no join; the labeled counts from the labeled
-- rows only). A dashboard that shows recent nights reads `bucket_counts_nightly where night > ...`, which DuckDB
-- answers from those nights' row groups alone.
with bucket_counts_nightly as (

    select * from bucket_counts_nightly

),

final as (

    select
        task_name,
        night,
        bucket,
        rows,
        round(100 * share_of_night, 1) as pct_of_night,
        round(mean_confidence, 3) as mean_confidence,
        off_format_rows,
        labeled_rows

    from bucket_counts_nightly

)

select * from final
order by task_name, night desc, mean_confidence desc
