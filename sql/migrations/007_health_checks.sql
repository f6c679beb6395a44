-- Night-by-night health of a task: each check's figure for a scoring run, its reference (the
-- champion's fit rows, else the nights before), the task file's threshold, and ok / warning.
CREATE TABLE health_checks (
    task_name     VARCHAR NOT NULL,
    task_version  VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,
    night         DATE NOT NULL,
    check_name    VARCHAR NOT NULL,              -- coverage | off_format | psi:<label> | quarantine | bucket:<name>
    value         DOUBLE,
    reference     DOUBLE,
    threshold     DOUBLE NOT NULL,
    status        VARCHAR NOT NULL,              -- ok | warning | no_reference
    detail        VARCHAR NOT NULL,
    reference_rows BIGINT,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, check_name)
);
