-- How accurate is each decision bucket, estimated for all its rows from the audit-sample labels?
with predictions_current as (

    select * from predictions_current

),

audited as (

    select * from predictions_current where is_audit_label

),

volume as (

    select task_name, task_version, bucket, count(*) as rows, avg(decision_confidence) as mean_confidence
    from predictions_current
    group by all

),

accuracy as (

    select
        task_version,
        bucket,
        count(*) as audit_labels,
        -- weights 1 / inclusion probability undo the audit's over-sampling of small buckets
        sum(label_weight * cast(is_correct as double)) / sum(label_weight) as estimated_accuracy

    from audited
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
        accuracy.estimated_accuracy

    from volume
    left join accuracy
        on volume.task_version = accuracy.task_version
        and volume.bucket = accuracy.bucket

)

select * from final
order by task_name, task_version, mean_confidence desc
