-- For thresholds 0.50 to 0.95, how many rows would be automated and how accurate are they (audit labels, weighted)?
-- Bounded by what it needs: the volume is a sum of the counts kept as rows are decided (decision_counts, migration
-- 016: by hundredth of decision confidence), the accuracy reads the audit labels in the labeled rows' copy
-- (labeled_predictions_current): never every prediction.
with decision_counts as (

    select * from decision_counts

),

labeled_predictions_current as (

    select * from labeled_predictions_current

),

thresholds as (

    select i / 100 as threshold from range(50, 100, 5) as r(i)

),

audited as (

    -- the audit labels of rows that are not off-format, judged
    select
        task_name,
        task_version,
        decision_confidence,
        cast(floor(decision_confidence * 20) as integer) as near_step,
        label_weight,
        is_correct

    from labeled_predictions_current
    where is_audit_label and coalesce(bucket_reason, '') <> 'off_format'

),

rows_per_step as (

    -- the step s with s / 20 <= confidence < (s + 1) / 20 is the hundredth h (h / 100 <= confidence < (h + 1) / 100,
    -- compared exactly as `confidence >= threshold` is) divided by 5; off-format rows go to manual whatever their
    -- confidence
    select task_name, task_version, hundredths // 5 as step, sum(rows) as rows
    from decision_counts
    where not off_format and hundredths >= 0
    group by all

),

audit_per_step as (

    -- the audit labels at their step s (s / 20 <= confidence < (s + 1) / 20, compared exactly as
    -- `confidence >= threshold` is, since confidence * 20 can round across a whole number)
    select
        task_name,
        task_version,
        near_step + case
            when decision_confidence >= (near_step + 1) * 5 / 100 then 1
            when decision_confidence < near_step * 5 / 100 then -1
            else 0
        end as step,
        count(*) as audit_labels,
        sum(label_weight * cast(is_correct as double)) as correct_weight,
        sum(label_weight) as audit_weight

    from audited
    group by all

),

per_step as (

    -- an audit label is a row too, so its step is among the rows' steps
    select
        rows_per_step.task_name,
        rows_per_step.task_version,
        rows_per_step.step,
        rows_per_step.rows,
        coalesce(audit_per_step.audit_labels, 0) as audit_labels,
        audit_per_step.correct_weight,
        audit_per_step.audit_weight

    from rows_per_step
    left join audit_per_step
        on rows_per_step.task_name = audit_per_step.task_name
        and rows_per_step.task_version = audit_per_step.task_version
        and rows_per_step.step is not distinct from audit_per_step.step

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
