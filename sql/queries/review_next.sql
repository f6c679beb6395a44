-- Which 50 rows should a reviewer label next (unlabeled, review bucket, least confident first)?
with review_queue as (

    select * from review_queue

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

    from review_queue
    where queue_position <= 50

)

select * from final
order by task_name, queue_position
