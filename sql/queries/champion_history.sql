-- Which calibrator was promoted or rolled back when, by whom and why, with the figures it was judged on?
with calibrator_history as (

    select * from calibrator_history

),

final as (

    select
        task_name,
        task_version,
        event_at,
        event,
        version,
        method,
        n_labels,
        actor,
        reason,
        metrics

    from calibrator_history
    where event in ('promoted', 'manual_promote', 'rollback', 'floor_changed', 'retired', 'rejected')

)

select * from final
order by task_name, event_at desc
