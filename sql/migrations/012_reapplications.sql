-- Re-application jobs: a promotion records one (the champion, the window, the row cap) in its own transaction;
-- the job then re-decides the window a chunk at a time, each chunk its own transaction, and `rows_done` moves
-- with each. 'pending' means part of the window may still be decided by an earlier champion (each row's
-- calibrator_version in current_decisions says which); a newer promotion supersedes an unfinished job.
CREATE TABLE reapplications (
    task_version        VARCHAR NOT NULL,
    calibrator_version  VARCHAR NOT NULL,  -- the champion being applied
    run_id              VARCHAR NOT NULL,  -- the recalibration that promoted it
    since               TIMESTAMPTZ NOT NULL,  -- predictions scored at or after this are re-decided
    max_rows            BIGINT,            -- [calibration] reapply_max_rows: the newest this many at most
    status              VARCHAR NOT NULL,  -- pending, done, superseded
    rows_done           BIGINT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    finished_at         TIMESTAMPTZ,
    PRIMARY KEY (task_version, calibrator_version, run_id)
);
