-- Copy the labeled ones among the predictions a re-application chunk has just decided again (registered as `decided`, with each one's rowid `table_row`; [$lower, $upper] bound those rowids) to labeled_predictions, with their new decision.
insert into labeled_predictions by name
select *
from predictions
where rowid >= $lower and rowid <= $upper
    and rowid in (select table_row from decided)
    and exists (
        select 1
        from labels
        where labels.task_name = predictions.task_name
            and labels.row_id = predictions.row_id
            and labels.superseded_at is null
    )
