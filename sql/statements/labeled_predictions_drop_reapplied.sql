-- Drop the copies (labeled_predictions, migration 016) of the predictions a re-application chunk has just decided again (registered as `decided`); labeled_predictions_copy_reapplied puts them back as they now are.
delete from labeled_predictions
where exists (
    select 1
    from decided
    where decided.task_version = labeled_predictions.task_version and decided.row_id = labeled_predictions.row_id
)
