-- Mark superseded each current label that a resolved incoming label changes, in label or design (the old row
-- stays, as history).
update labels
set superseded_at = $now
where task_name = $task_name
    and superseded_at is null
    and row_id in (
        select row_id
        from resolved
        where current_label is not null and changed
    )
