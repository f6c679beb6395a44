-- For thresholds 0.50 to 0.95, how many rows would be automated and how accurate are they (audit labels, weighted)?
-- Bounded by what it needs: the volume is one pass over the decisions' few columns (current_decisions: no labels
-- joined), the accuracy reads the audit labels only (`where is_audit_label` joins the current labels into the
-- predictions by key); predictions_current read whole would join the labels, fit rows and evidence to every row.
with current_decisions as (

    select * from current_decisions

),

predictions_current as (

    select * from predictions_current

),

thresholds as (

    select i / 100 as threshold from range(50, 100, 5) as r(i)

),

automatable as (

    -- off-format rows go to manual whatever their confidence: every other row once (is_audit false), and each
    -- audit label once more with its weight and correctness (is_audit true)
    select task_name, task_version, decision_confidence, false as is_audit, null::double as label_weight,
        null::boolean as is_correct
    from current_decisions
    where coalesce(bucket_reason, '') <> 'off_format'

    union all

    select task_name, task_version, decision_confidence, true as is_audit, label_weight, is_correct
    from predictions_current
    where is_audit_label and coalesce(bucket_reason, '') <> 'off_format'

),

near as (

    select *, cast(floor(decision_confidence * 20) as integer) as near_step
    from automatable

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
        count(*) filter (where not is_audit) as rows,
        count(*) filter (where is_audit) as audit_labels,
        sum(label_weight * cast(is_correct as double)) filter (where is_audit) as correct_weight,
        sum(label_weight) filter (where is_audit) as audit_weight

    from near
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
