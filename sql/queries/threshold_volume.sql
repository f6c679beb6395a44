-- For thresholds 0.50 to 0.95, how many rows would be automated and how accurate are they (audit labels, weighted)?
with predictions_current as (

    select * from predictions_current

),

thresholds as (

    select i / 100 as threshold from range(50, 100, 5) as r(i)

),

automatable as (

    -- off-format rows go to manual whatever their confidence
    select * from predictions_current where coalesce(bucket_reason, '') <> 'off_format'

),

final as (

    select
        automatable.task_name,
        automatable.task_version,
        thresholds.threshold,
        count(*) as rows,
        count(*) filter (where automatable.is_audit_label) as audit_labels,
        sum(automatable.label_weight * cast(automatable.is_correct as double)) filter (where automatable.is_audit_label)
            / sum(automatable.label_weight) filter (where automatable.is_audit_label) as estimated_accuracy

    from thresholds
    inner join automatable
        on automatable.decision_confidence >= thresholds.threshold
    group by all

)

select * from final
order by task_name, task_version, threshold
