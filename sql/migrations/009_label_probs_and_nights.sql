-- Every label's calibrated probability, not only the top one (multiclass NLL and class-wise
-- reliability need them), at scoring and at each re-application; NULL where no calibrator decided.
ALTER TABLE predictions ADD COLUMN calibrated_probs MAP(VARCHAR, DOUBLE);
ALTER TABLE predictions ADD COLUMN reapplied_calibrated_probs MAP(VARCHAR, DOUBLE);
ALTER TABLE decisions ADD COLUMN calibrated_probs MAP(VARCHAR, DOUBLE);

-- A night is the run's logical date (the night it was scheduled for, or the one given to
-- `calscore score --night`), recorded at scoring: two runs minutes apart can be two nights,
-- and a run past midnight still belongs to its night.
ALTER TABLE runs ADD COLUMN night DATE;
ALTER TABLE predictions ADD COLUMN night DATE;

-- Existing runs: the UTC day they started (the day a scheduled run's start was expected, give or take its wait).
UPDATE runs SET night = date '1970-01-01' + cast(epoch_ms(started_at) // 86400000 as integer);
-- Existing rows: their run's night where the ledger knows the run, so a run past midnight keeps all its rows on
-- one night; else the UTC day they were scored, the rule the views used until now.
UPDATE predictions SET night = runs.night FROM runs WHERE predictions.run_id = runs.run_id;
UPDATE predictions SET night = date '1970-01-01' + cast(epoch_ms(scored_at) // 86400000 as integer)
WHERE night IS NULL;
