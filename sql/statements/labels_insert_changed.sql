-- Add each resolved incoming label that is new for its row or differs from its current label or design.
insert into labels (task_name, row_id, label, source, inclusion_prob, imported_at, superseded_at, import_id, design)
select $task_name, row_id, label, $source, inclusion_prob, $now, null, $import_id, design
from resolved
where changed
