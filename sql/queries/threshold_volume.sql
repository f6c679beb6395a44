-- For thresholds 0.50 to 0.95, how many rows would be automated and how accurate are they (audit labels, weighted)?
with predictions_current as (

    select * from predictions_current

),

thresholds as (

    select i / 100 as threshold from range(50, 100, 5) as r(i)

),

automatable as (

    -- off-format rows go to manual whatever their confidence
    select
        task_name,
        task_version,
        decision_confidence,
        cast(floor(decision_confidence * 20) as integer) as near_step,
        is_audit_label,
        label_weight,
        is_correct

    from predictions_current
    where coalesce(bucket_reason, '') <> 'off_format'

),

per_step as (

    -- one pass over the rows: each counted once, at its step s (s / 20 <= confidence < (s + 1) / 20, compared
    -- exactly as `confidence >= threshold` is, since confidence * 20 can round across a whole number)
    select
        task_name,
        task_version,
        near_step + case
            when decision_confidence >= (near_step + 1) * 5 / 100 then 1
            when decision_confidence < near_step * 5 / 100 then -1
            else 0
        end as step,
        count(*) as rows,
        count(*) filter (where is_audit_label) as audit_labels,
        sum(label_weight * cast(is_correct as double)) filter (where is_audit_label) as correct_weight,
        sum(label_weight) filter (where is_audit_label) as audit_weight

    from automatable
    group by all

),

final as (

    -- a threshold automates the rows of every step at or above it (a few dozen steps, not every row)
    select
        per_step.task_name,
        per_step.task_version,
        thresholds.threshold,
        cast(sum(per_step.rows) as bigint) as rows,
        cast(sum(per_step.audit_labels) as bigint) as audit_labels,
        -- weights 1 / inclusion probability undo the audit's over-sampling of small buckets
        sum(per_step.correct_weight) / sum(per_step.audit_weight) as estimated_accuracy

    from thresholds
    inner join per_step
        on per_step.step * 5 / 100 >= thresholds.threshold
    group by all

)

select * from final
order by task_name, task_version, threshold
