-- Each label's sampling design, which decides whether it can certify a threshold:
-- 'audit' (a `labels sample` audit sample, weight 1 / inclusion_prob), 'random' (a simple random
-- sample of the scored rows, equal inclusion probabilities), 'convenience' (no design: shown with a
-- warning, never certifies). Labels stored before this migration keep what they were: those with an
-- inclusion probability counted as audit labels, the others as convenience labels.
ALTER TABLE labels ADD COLUMN design VARCHAR;
UPDATE labels SET design = CASE WHEN inclusion_prob IS NOT NULL THEN 'audit' ELSE 'convenience' END;
