-- Append a calibrator's re-applied decisions (registered as `decided`); earlier decisions are never overwritten.
insert into decisions (
    task_version, row_id, calibrator_version, label, confidence, calibrated_probs, bucket, bucket_reason, run_id, decided_at
)
select task_version, row_id, calibrator_version, label, confidence, calibrated_probs, bucket, bucket_reason, run_id, decided_at
from decided
