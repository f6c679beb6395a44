-- Store one recipe's out-of-fold predictions (registered as `evidence_rows`; the recipe's old rows were deleted).
insert into evidence (task_version, recipe, row_id, fold, probs, label, confidence, bucket, bucket_reason)
select task_version, recipe, row_id, fold, probs, label, confidence, bucket, bucket_reason
from evidence_rows
