-- The health checks of the task's newest night that has any.
select night, check_name, value, reference, threshold, status, detail
from health_nightly
where task_name = $task_name
    and night = (select max(night) from health_nightly where task_name = $task_name)
order by check_name
