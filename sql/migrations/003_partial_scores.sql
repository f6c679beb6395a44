-- Scores from backends that see only part of the first-token distribution (an
-- endpoint's top-k list): which labels' mass was imputed, and whether coverage is
-- only a lower bound (see calscore.jobs.scoring.schema). Older rows came from
-- full-vocabulary scoring: nothing unobserved, coverage exact.
ALTER TABLE predictions ADD COLUMN unobserved_labels VARCHAR[] DEFAULT [];
ALTER TABLE predictions ADD COLUMN coverage_is_lower_bound BOOLEAN DEFAULT false;
