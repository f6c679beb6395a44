-- Is calibration holding up: each reliability snapshot's figures, with the change since the previous one?
with reliability_snapshots as (

    select * from reliability_snapshots

),

calibrators as (

    select version, method, status from calibrators

),

final as (

    select
        reliability_snapshots.task_name,
        reliability_snapshots.task_version,
        reliability_snapshots.snapshot_id,
        reliability_snapshots.created_at,
        reliability_snapshots.calibrator_version,
        calibrators.method as calibrator_method,
        calibrators.status as calibrator_status,
        reliability_snapshots.scores,
        reliability_snapshots.segment,
        reliability_snapshots.n,
        reliability_snapshots.accuracy,
        reliability_snapshots.ece,
        reliability_snapshots.ece_ci_low,
        reliability_snapshots.ece_ci_high,
        reliability_snapshots.ece_equal_mass,
        reliability_snapshots.mce,
        reliability_snapshots.smece,
        reliability_snapshots.smece_ci_low,
        reliability_snapshots.smece_ci_high,
        reliability_snapshots.debiased_ece,
        reliability_snapshots.nll,
        reliability_snapshots.brier,
        reliability_snapshots.ece - lag(reliability_snapshots.ece) over (
            partition by reliability_snapshots.task_version, reliability_snapshots.scores, reliability_snapshots.segment
            order by reliability_snapshots.created_at, reliability_snapshots.snapshot_id
        ) as ece_change,
        reliability_snapshots.diagram_path

    from reliability_snapshots
    left join calibrators
        on reliability_snapshots.calibrator_version = calibrators.version

)

select * from final
