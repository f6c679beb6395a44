-- Each bucket's labeled rows decided by a calibrated confidence, judged without their own label (held out or
-- out-of-fold), in the bucket that judgement puts them in: weighted accuracy and effective n.
select
    evidence_bucket as bucket,
    sum(label_weight * is_correct::integer) / sum(label_weight) as accuracy,
    sum(label_weight) * sum(label_weight) / sum(label_weight * label_weight) as n_eff
from labeled_predictions_current
where task_version = $task_version and is_labeled and bucket_basis = 'calibrated'
group by evidence_bucket
