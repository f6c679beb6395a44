-- How accurate is each decision bucket, estimated for all its rows from the audit- and random-sample labels (and what do convenience labels say)?
-- Bounded by what it needs: the volume is a sum of the counts kept as rows are decided (decision_counts, migration
-- 016), and the accuracies read the labeled rows' copy (labeled_predictions_current): never every prediction.
with decision_counts as (

    select * from decision_counts

),

labeled_predictions_current as (

    select * from labeled_predictions_current

),

labeled as (

    -- each label judged in the bucket of its held-out or out-of-fold prediction
    select task_version, evidence_bucket as bucket, label_design, label_weight, is_correct
    from labeled_predictions_current
    where is_labeled

),

audited as (

    -- labels of a sampling design (label_design 'audit' or 'random'): an estimate for all the bucket's rows
    select * from labeled where label_design in ('audit', 'random')

),

convenience as (

    -- labels chosen without a design (a review queue, hand-picked): shown, never an estimate for the bucket
    select * from labeled where label_design = 'convenience'

),

volume as (

    select
        task_name,
        task_version,
        bucket,
        cast(sum(rows) as bigint) as rows,
        sum(confidence_sum) / nullif(sum(rows) filter (where hundredths >= 0), 0) as mean_confidence

    from decision_counts
    group by task_name, task_version, bucket

),

accuracy as (

    select
        task_version,
        bucket,
        count(*) as audit_labels,
        -- weights 1 / inclusion probability undo the audit's over-sampling of small buckets (equal for random)
        sum(label_weight * cast(is_correct as double)) / sum(label_weight) as estimated_accuracy

    from audited
    group by all

),

convenience_accuracy as (

    select
        task_version,
        bucket,
        count(*) as convenience_labels,
        avg(cast(is_correct as double)) as convenience_accuracy

    from convenience
    group by all

),

final as (

    select
        volume.task_name,
        volume.task_version,
        volume.bucket,
        volume.rows,
        volume.mean_confidence,
        coalesce(accuracy.audit_labels, 0) as audit_labels,
        accuracy.estimated_accuracy,
        coalesce(convenience_accuracy.convenience_labels, 0) as convenience_labels,
        convenience_accuracy.convenience_accuracy,
        case when convenience_accuracy.convenience_labels > 0 then
            'convenience labels: not a sample of the bucket, so their accuracy may not hold for its rows; '
            || 'they never certify (import a random sample with --design random)'
        end as warning

    from volume
    left join accuracy
        on volume.task_version = accuracy.task_version
        and volume.bucket = accuracy.bucket
    left join convenience_accuracy
        on volume.task_version = convenience_accuracy.task_version
        and volume.bucket = convenience_accuracy.bucket

)

select * from final
order by task_name, task_version, mean_confidence desc
