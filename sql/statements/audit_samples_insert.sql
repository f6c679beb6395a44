-- Record a drawn audit sample (registered as `sample`): each row's stratum (its bucket) and inclusion probability.
insert into audit_samples (sample_id, task_name, task_version, row_id, stratum, inclusion_prob, created_at)
select sample_id, $task_name, $task_version, row_id, bucket, inclusion_prob, $created_at
from sample
