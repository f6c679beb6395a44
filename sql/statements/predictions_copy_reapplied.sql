-- Copy re-applied decisions (registered as `decided`, one per prediction) onto their predictions, where the views
-- read a row's current decision; an older decision never replaces a newer one. `table_row` is each prediction's
-- rowid, read in the same transaction: the update touches those rows' row groups, not a join over the table.
update predictions
set reapplied_calibrator_version = decided.calibrator_version,
    reapplied_label = decided.label,
    reapplied_confidence = decided.confidence,
    reapplied_calibrated_probs_json = to_json(decided.calibrated_probs),  -- text: updated in place (migration 014)
    reapplied_bucket = decided.bucket,
    reapplied_bucket_reason = decided.bucket_reason,
    reapplied_at = decided.decided_at,
    reapplied_run_id = decided.run_id,
    -- the review queue (migration 013): in it with the new decision's confidence when that decision is 'review'
    -- and the row has no label, out of it otherwise
    queue_confidence = case when decided.bucket = 'review' and not exists (
        select 1 from labels
        where labels.task_name = predictions.task_name and labels.row_id = predictions.row_id
            and labels.superseded_at is null
    ) then decided.confidence end
from decided
where predictions.rowid = decided.table_row
    and predictions.row_id = decided.row_id
    -- the newest decision is current (ties: the larger calibrator version, as migration 004 chose)
    and (predictions.reapplied_at is null
        or (decided.decided_at, decided.calibrator_version)
            > (predictions.reapplied_at, predictions.reapplied_calibrator_version))
