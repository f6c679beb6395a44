-- Which calibrators were fitted, promoted, rejected or retired, when, by whom, why and on what figures?
with calibrators as (

    select * from calibrators

),

calibrator_events as (

    select * from calibrator_events

),

final as (

    select
        calibrators.task_name,
        calibrators.task_version,
        calibrators.version,
        calibrators.method,
        calibrators.status as current_status,
        calibrators.n_labels,
        calibrators.created_at,
        calibrator_events.event,
        calibrator_events.actor,
        calibrator_events.reason,
        calibrator_events.metrics,
        calibrator_events.event_at

    from calibrators
    left join calibrator_events
        on calibrators.task_version = calibrator_events.task_version
        and calibrators.version = calibrator_events.version

)

select * from final
