-- Scores from sampling backends (method = "consistency" or "combined"): each label's share of
-- the N sampled answers (label -> c_k / N), and N. Null for rows scored by first-token
-- log-probabilities alone, as every row before this migration was.
ALTER TABLE predictions ADD COLUMN agreement MAP(VARCHAR, DOUBLE);
ALTER TABLE predictions ADD COLUMN samples INTEGER;
