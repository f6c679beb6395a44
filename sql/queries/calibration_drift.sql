-- Has calibration drifted: the latest snapshot's ECE per segment against the previous one?
with calibration_trend as (

    select * from calibration_trend

),

latest as (

    select *
    from calibration_trend
    where scores = 'calibrated'
    qualify row_number() over (
        partition by task_version, segment order by created_at desc, snapshot_id desc
    ) = 1

),

final as (

    select
        task_name,
        task_version,
        segment,
        snapshot_id,
        created_at,
        calibrator_version,
        n,
        round(ece, 4) as ece,
        round(ece_ci_low, 4) as ece_ci_low,
        round(ece_ci_high, 4) as ece_ci_high,
        round(ece_change, 4) as ece_change,
        -- a rise larger than the interval's half-width is worth a look
        coalesce(ece_change > (ece_ci_high - ece_ci_low) / 2, false) as drifted

    from latest

)

select * from final
order by task_name, task_version, segment
