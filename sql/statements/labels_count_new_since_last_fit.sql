-- Count the task's current labels imported after its newest calibrator was fitted (all of them before the first fit).
select count(*)
from labels
where task_name = $task_name
    and superseded_at is null
    and imported_at > coalesce(
        (select max(created_at) from calibrators where task_name = $task_name),
        timestamptz '1970-01-01'
    )
