-- The predictions a re-application chunk decides (registered as `decided`, each with its `table_row`, the prediction's rowid), with the columns their current decision is counted by (decision_counts_add); [$lower, $upper] bound the rowids, so the scan reads the chunk's row groups only.
select
    task_name,
    task_version,
    night,
    segment,
    bucket,
    bucket_reason,
    bucket_basis,
    confidence,
    raw_confidence,
    reapplied_bucket,
    reapplied_bucket_reason,
    reapplied_confidence,
    reapplied_at
from predictions
where rowid >= $lower and rowid <= $upper
    and rowid in (select table_row from decided)
