-- The smooth ECE (Blasiok & Nakkiran 2023, with its bootstrap interval) and the debiased ECE (Kumar et al.
-- 2019) of each reliability snapshot: binned ECE on a few hundred rows is mostly binning noise.
-- NULL for snapshots recorded before this migration.
ALTER TABLE reliability_snapshots ADD COLUMN smece DOUBLE;
ALTER TABLE reliability_snapshots ADD COLUMN smece_ci_low DOUBLE;
ALTER TABLE reliability_snapshots ADD COLUMN smece_ci_high DOUBLE;
ALTER TABLE reliability_snapshots ADD COLUMN debiased_ece DOUBLE;
