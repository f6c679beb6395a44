-- Take the rows an import has just labeled (the changed rows of `resolved_predictions`) out of the review queue (migration 013): a labeled row waits no more, whichever task version scored it.
update predictions
set queue_confidence = null
from resolved_predictions p
where predictions.rowid = p.table_row and p.changed and p.queued
