-- One evidence base (calibration_store/evidence.py): every labeled row's out-of-fold prediction by each
-- calibration recipe (a method with its default parameters), fitted on the other folds' labels. Each
-- recalibration keeps it current; reports, status, thresholds and health checks read it, so a champion
-- fitted on every label still has a held-out figure for every label.
CREATE TABLE evidence (
    task_version  VARCHAR NOT NULL,
    recipe        VARCHAR NOT NULL,
    row_id        VARCHAR NOT NULL,
    fold          INTEGER NOT NULL,
    probs         DOUBLE[] NOT NULL,  -- every label's probability, in the task's label order
    label         VARCHAR NOT NULL,   -- the argmax, and its probability:
    confidence    DOUBLE NOT NULL,
    bucket        VARCHAR NOT NULL,   -- the bucket this prediction gets (coverage floor included)
    bucket_reason VARCHAR             -- 'off_format' below the coverage floor
    -- one row per (task_version, recipe, row_id), by construction: a recipe's rows are deleted and written again
    -- in one transaction. No PRIMARY KEY: DuckDB's index made deleting and re-inserting 1.3 million keys in one
    -- transaction take minutes to commit (3 s without).
);

-- What each recipe's stored predictions were computed from: a recalibration whose labels give the same
-- fingerprint reuses them instead of fitting again.
CREATE TABLE evidence_sets (
    task_version VARCHAR NOT NULL,
    recipe       VARCHAR NOT NULL,
    fingerprint  VARCHAR NOT NULL,
    n_rows       INTEGER NOT NULL,
    folds        INTEGER NOT NULL,
    fold_seed    INTEGER NOT NULL,
    skipped      VARCHAR,             -- why the recipe could not be cross-fitted (then it has no rows)
    computed_at  TIMESTAMPTZ NOT NULL,
    run_id       VARCHAR,
    PRIMARY KEY (task_version, recipe)
);

-- What each reliability snapshot rests on: rows the calibrator never saw, rows judged by its recipe's out-of-fold
-- predictions, and the label designs used ({"audit": 480, ...}). NULL for snapshots recorded before.
ALTER TABLE reliability_snapshots ADD COLUMN n_held_out INTEGER;
ALTER TABLE reliability_snapshots ADD COLUMN n_out_of_fold INTEGER;
ALTER TABLE reliability_snapshots ADD COLUMN label_designs VARCHAR;
