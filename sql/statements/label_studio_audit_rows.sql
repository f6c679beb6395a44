-- One audit sample's rows with their current decision, to push to Label Studio (inclusion probabilities stay here).
select
    a.row_id,
    a.sample_id,
    'audit' as design,
    d.text,
    d.label as predicted_label,
    d.decision_confidence as confidence,
    d.calibrator_version
from audit_samples a
inner join decided_predictions d
    on d.task_version = a.task_version and d.row_id = a.row_id
where a.task_name = $task_name and a.sample_id = $sample_id
order by a.row_id
