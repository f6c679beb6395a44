-- What did we decide for each row, with which calibrator, and was it right (where a current label exists)?
-- A label is judged against a prediction by a map that never saw it (evidence_basis):
--   'held_out': the deciding calibrator was not fitted on the row, so its own decision is judged;
--   'out_of_fold': it was, so its recipe's out-of-fold prediction (fitted on the other folds, table evidence) is;
--   NULL: no current label, or a fit row without out-of-fold evidence (recalibrate to build it).
-- evidence_label / evidence_confidence / evidence_bucket are that prediction (the decision itself when held out),
-- evidence_probs its probabilities when out-of-fold;
-- is_labeled: a label with such evidence; is_correct: evidence_label = true_label;
-- is_audit_label: a held-out label from a probability sample (label_design 'audit' or 'random'): the labels that
-- certify a threshold for the deployed map; a 'convenience' label is judged too but never certifies;
-- has_label: any current label (used_in_fit tells the fit rows apart).
with decided_predictions as (

    select * from decided_predictions

),

current_labels as (

    select * from current_labels

),

calibrators as (

    -- method is 'auto/platt' for an auto calibrator: its recipe (what its evidence is filed under) is 'platt'
    select version, method, regexp_replace(method, '^auto/', '') as recipe, status from calibrators

),

fit_rows as (

    select version, row_id from calibrator_fit_rows

),

evidence as (

    select task_version, recipe, row_id, probs, label, confidence, bucket, bucket_reason from evidence

),

joined as (

    select
        decided_predictions.*,
        calibrators.method as calibrator_method,
        calibrators.status as calibrator_status,
        current_labels.true_label,
        current_labels.label_source,
        current_labels.inclusion_prob,
        current_labels.label_design,
        current_labels.is_audit_label as is_sample_label,
        current_labels.label_weight,
        fit_rows.row_id is not null as used_in_fit,
        case
            when current_labels.true_label is null then null
            when fit_rows.row_id is null then 'held_out'
            when evidence.row_id is not null then 'out_of_fold'
        end as evidence_basis,
        evidence.probs as evidence_probs,  -- out-of-fold rows: every label's probability, in the task's label order
        evidence.label as oof_label,
        evidence.confidence as oof_confidence,
        evidence.bucket as oof_bucket,
        evidence.bucket_reason as oof_bucket_reason

    from decided_predictions
    left join current_labels
        -- one hash key, row_id, and task_name (NOT NULL on both sides) as a range that is its equality: with a single
        -- key DuckDB pushes a Bloom filter of the labels' row ids into the scan of predictions when the join is an
        -- inner one (under `where is_labeled`), so it reads the other columns of the labeled rows only
        on decided_predictions.row_id = current_labels.row_id
        and decided_predictions.task_name >= current_labels.task_name
        and decided_predictions.task_name <= current_labels.task_name
    left join calibrators
        on decided_predictions.calibrator_version = calibrators.version
    left join fit_rows
        on decided_predictions.calibrator_version = fit_rows.version
        and decided_predictions.row_id = fit_rows.row_id
    left join evidence
        on decided_predictions.task_version = evidence.task_version
        and calibrators.recipe = evidence.recipe
        and decided_predictions.row_id = evidence.row_id

),

final as (

    select
        * exclude (label_logprobs, text, is_sample_label, oof_label, oof_confidence, oof_bucket, oof_bucket_reason),
        case evidence_basis when 'out_of_fold' then oof_label when 'held_out' then label end as evidence_label,
        case evidence_basis when 'out_of_fold' then oof_confidence when 'held_out' then decision_confidence end
            as evidence_confidence,
        case evidence_basis when 'out_of_fold' then oof_bucket when 'held_out' then bucket end as evidence_bucket,
        case evidence_basis when 'out_of_fold' then oof_bucket_reason when 'held_out' then bucket_reason end
            as evidence_bucket_reason,
        -- `true_label is not null and` changes no value (evidence_basis is NULL without a label) but lets DuckDB
        -- read `where is_labeled` / `where is_audit_label` as the labeled rows only: it joins the current labels
        -- into the predictions by key (an inner join) instead of every prediction to the labels, the fit rows and
        -- the evidence (3 s of CPU at ten million predictions for 2% of them labeled)
        true_label is not null and coalesce(is_sample_label, false) and evidence_basis = 'held_out' as is_audit_label,
        true_label is not null as has_label,
        true_label is not null and evidence_basis is not null as is_labeled,
        case evidence_basis when 'out_of_fold' then oof_label when 'held_out' then label end = true_label
            as is_correct,
        raw_label = true_label as raw_correct,
        label_logprobs,
        text

    from joined

)

select * from final
