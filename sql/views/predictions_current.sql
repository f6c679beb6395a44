-- What did we decide for each row, with which calibrator, and was it right (where a current label exists)?
-- is_labeled: a current label the calibrator behind the decision was not fitted on (usable for evaluation);
-- is_audit_label: such a held-out label from a probability sample (label_design 'audit' or 'random'), the labels
-- that certify; a 'convenience' label is held out too but never certifies;
-- has_label: any current label (used_in_fit tells the fit rows apart).
with decided_predictions as (

    select * from decided_predictions

),

current_labels as (

    select * from current_labels

),

calibrators as (

    select version, method, status from calibrators

),

fit_rows as (

    select version, row_id from calibrator_fit_rows

),

final as (

    select
        decided_predictions.* exclude (label_logprobs, text),
        calibrators.method as calibrator_method,
        calibrators.status as calibrator_status,
        current_labels.true_label,
        current_labels.label_source,
        current_labels.inclusion_prob,
        current_labels.label_design,
        coalesce(current_labels.is_audit_label, false) and fit_rows.row_id is null as is_audit_label,
        current_labels.label_weight,
        current_labels.true_label is not null as has_label,
        fit_rows.row_id is not null as used_in_fit,
        current_labels.true_label is not null and fit_rows.row_id is null as is_labeled,
        decided_predictions.label = current_labels.true_label as is_correct,
        decided_predictions.raw_label = current_labels.true_label as raw_correct,
        decided_predictions.label_logprobs,
        decided_predictions.text

    from decided_predictions
    left join current_labels
        on decided_predictions.task_name = current_labels.task_name
        and decided_predictions.row_id = current_labels.row_id
    left join calibrators
        on decided_predictions.calibrator_version = calibrators.version
    left join fit_rows
        on decided_predictions.calibrator_version = fit_rows.version
        and decided_predictions.row_id = fit_rows.row_id

)

select * from final
