-- The task's current labels, each with what judges calibrator $calibrator_version on it: its own prediction where it
-- was not fitted on the row (basis 'held_out'), else its recipe's out-of-fold prediction (basis 'out_of_fold'; a fit
-- row without one is left out). With $calibrator_version null (no calibrator yet) every label is 'held_out' for the
-- raw scores, which are fitted on nothing. Of one night, or all when $night is null.
with current_labels as (

    select
        row_id,
        label,
        inclusion_prob,
        -- a label written without a design (before migration 008 or by hand) is what it was then
        coalesce(design, case when inclusion_prob is not null then 'audit' else 'convenience' end) as design
    from labels
    where task_name = $task_name and superseded_at is null
    -- one current label per row by design; the newest wins should an import ever race
    qualify row_number() over (partition by row_id order by imported_at desc) = 1

),

fit_rows as (

    select row_id
    from calibrator_fit_rows
    where version = $calibrator_version

),

out_of_fold as (

    select row_id, probs
    from evidence
    where task_version = $task_version and recipe = $recipe

),

final as (

    select
        p.row_id,
        p.label_logprobs,
        p.agreement,  -- sampling tasks: what a combined calibrator reads beside the log-probabilities
        p.samples,
        coalesce(p.segment, '(none)') as segment,
        l.label as true_label,
        l.design as label_design,
        -- as current_labels: a convenience label (e.g. from the review queue) has no design weight: 1
        case when l.design = 'convenience' then 1.0 else 1.0 / coalesce(l.inclusion_prob, 1.0) end as label_weight,
        case when f.row_id is null then 'held_out' else 'out_of_fold' end as basis,
        o.probs as out_of_fold_probs
    from current_labels l
    join labeled_predictions p on p.row_id = l.row_id and p.task_version = $task_version  -- the labeled rows' copy (migration 016)
    left join fit_rows f on f.row_id = l.row_id
    left join out_of_fold o on o.row_id = l.row_id
    where (f.row_id is null or o.row_id is not null)
        and ($night::date is null or p.night = $night::date)

)

select *
from final
order by row_id
