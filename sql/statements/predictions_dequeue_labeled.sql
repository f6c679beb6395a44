-- Take the rows an import has just labeled (the changed rows of `resolved`) out of the review queue (migration 013):
-- a labeled row waits no more, whichever task version scored it.
update predictions
set queue_confidence = null
where task_name = $task_name
    and queue_confidence is not null
    and row_id in (select row_id from resolved where changed)
