-- Which 50 rows should a reviewer label next (unlabeled, review bucket, least confident first)?
-- not materialized: read twice below, the queue would otherwise be copied whole (text included) to be read once
with review_queue as not materialized (

    select * from review_queue

),

boundaries as (

    -- each task version's 50th lowest confidence (min(x, 50): its 50 lowest, in order): only rows at or below it
    -- can be among its first 50, so the numbering below runs over those, not over the whole queue
    select task_version, list_last(min(decision_confidence, 50)) as boundary
    from review_queue
    group by task_version

),

head as (

    select
        review_queue.*,
        row_number() over (
            partition by review_queue.task_version order by decision_confidence, scored_at, row_id
        ) as queue_position

    from review_queue
    inner join boundaries
        on boundaries.task_version = review_queue.task_version
        and review_queue.decision_confidence <= boundaries.boundary
    qualify queue_position <= 50

),

final as (

    select
        task_name,
        queue_position,
        row_id,
        night,
        segment,
        predicted_label,
        round(decision_confidence, 3) as confidence,
        left(text, 120) as text_start

    from head

)

select * from final
order by task_name, queue_position
