-- The ids of a staged batch (registered as `staged_keys`: every part's task_version and row_id) that this
-- task_version has scored before, as the temporary table `scored_before`: one pass over the predictions per batch,
-- which its parts' statements then read instead of each scanning every prediction (two scans a 2,048-row part
-- made 4 s of CPU per 10,000-row batch at ten million predictions). The batch's own ids are unique (staging
-- quarantines a repeated id as duplicate_id), so no part can meet an id an earlier part wrote.
-- One hash key (row_id; task_version, NOT NULL on both sides, as a range that is its equality): DuckDB then filters
-- the scan of predictions by the staged ids (a Bloom filter).
create or replace temp table scored_before as
select s.task_version, s.row_id
from staged_keys s
join predictions p on p.row_id = s.row_id and p.task_version >= s.task_version and p.task_version <= s.task_version
