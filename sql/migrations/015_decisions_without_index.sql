-- `decisions` without its primary key. The table only grows (every re-application appends to it), and DuckDB loads a
-- table's whole key index to append to it: at ten million predictions with 14.7 million decisions, appending one
-- re-application chunk of 50,000 took 1.4 s of CPU and 800 MB of memory for the index alone, more with every
-- re-application. The re-application decides a row only when its current decision is not the champion's, in the
-- transaction that appends the decision (jobs/calibrators/reapply.py): that keeps one decision per row and champion,
-- as tests/test_reapply_crash_safety.py checks after a SIGKILL at random points.
CREATE TABLE decisions_appended (
    task_version       VARCHAR NOT NULL,
    row_id             VARCHAR NOT NULL,
    calibrator_version VARCHAR NOT NULL,
    label              VARCHAR NOT NULL,
    confidence         DOUBLE NOT NULL,
    bucket             VARCHAR NOT NULL,
    bucket_reason      VARCHAR,
    run_id             VARCHAR NOT NULL,
    decided_at         TIMESTAMPTZ NOT NULL,
    calibrated_probs   MAP(VARCHAR, DOUBLE)
);

INSERT INTO decisions_appended
SELECT task_version, row_id, calibrator_version, label, confidence, bucket, bucket_reason, run_id, decided_at,
    calibrated_probs
FROM decisions;

DROP TABLE decisions;

ALTER TABLE decisions_appended RENAME TO decisions;
