-- The task's current labels that calibrator $calibrator_version was not fitted on (every current label when it is
-- null: raw scores are fitted on nothing), with the task_version's stored raw scores, of one night or all.
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

final as (

    select
        p.row_id,
        p.label_logprobs,
        p.agreement,  -- sampling tasks: what a combined calibrator reads beside the log-probabilities
        p.samples,
        l.label as true_label,
        -- as current_labels: a convenience label (e.g. from the review queue) has no design weight: 1
        case when l.design = 'convenience' then 1.0 else 1.0 / coalesce(l.inclusion_prob, 1.0) end as label_weight
    from current_labels l
    join predictions p on p.row_id = l.row_id and p.task_version = $task_version
    where l.row_id not in (select row_id from fit_rows)
        and ($night::date is null or p.night = $night::date)

)

select row_id, label_logprobs, agreement, samples, true_label, label_weight
from final
order by row_id
