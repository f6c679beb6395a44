-- Core warehouse tables. One writer at a time; analysts read.

-- Every run of a flow: the lock (status = 'running' + heartbeat) and its provenance.
CREATE TABLE runs (
    run_id            VARCHAR PRIMARY KEY,
    task_name         VARCHAR NOT NULL,
    task_version      VARCHAR NOT NULL,
    kind              VARCHAR NOT NULL,          -- score | rescore | recalibrate
    status            VARCHAR NOT NULL,          -- running | completed | failed | cancelled | abandoned | released
    started_at        TIMESTAMPTZ NOT NULL,
    heartbeat_at      TIMESTAMPTZ NOT NULL,
    finished_at       TIMESTAMPTZ,
    host              VARCHAR,
    pid               INTEGER,
    model             VARCHAR,
    model_fingerprint VARCHAR,
    dtype             VARCHAR,
    device            VARCHAR,
    labels            VARCHAR[],                 -- label order of label_logprobs
    package_versions  JSON,
    summary           JSON
);

-- The batch ledger: a batch (uri + content hash) is scored once per task.
CREATE TABLE batches (
    task_name     VARCHAR NOT NULL,
    uri           VARCHAR NOT NULL,
    content_hash  VARCHAR NOT NULL,
    task_version  VARCHAR NOT NULL,
    status        VARCHAR NOT NULL,              -- done | failed | retry (an operator asked to retry a failed batch)
    rows_in       BIGINT,
    rows_scored   BIGINT,
    rows_quarantined BIGINT,
    run_id        VARCHAR NOT NULL,
    error         VARCHAR,
    finished_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_name, uri, content_hash)
);

-- One row per scored text. Raw scores are kept forever; the decision made at
-- scoring time is never overwritten (re-applied calibrators go to decisions).
CREATE TABLE predictions (
    task_version       VARCHAR NOT NULL,
    row_id             VARCHAR NOT NULL,
    task_name          VARCHAR NOT NULL,
    run_id             VARCHAR NOT NULL,
    batch_uri          VARCHAR NOT NULL,
    batch_hash         VARCHAR NOT NULL,
    model              VARCHAR NOT NULL,
    text               VARCHAR NOT NULL,         -- the input text as received (untruncated), for reviewers
    label_logprobs     MAP(VARCHAR, DOUBLE) NOT NULL, -- log p(label) at the first generated token
    coverage           DOUBLE NOT NULL,          -- total probability on any label token
    total_probability  DOUBLE NOT NULL,          -- unnormalised mass of the raw prediction
    raw_label          VARCHAR NOT NULL,
    raw_confidence     DOUBLE NOT NULL,          -- raw prediction's share of the label mass
    truncated          BOOLEAN NOT NULL,
    calibrator_version VARCHAR,                  -- NULL: no champion yet
    label              VARCHAR NOT NULL,         -- calibrated prediction (raw when uncalibrated)
    confidence         DOUBLE,                   -- calibrated confidence; NULL when uncalibrated
    bucket             VARCHAR NOT NULL,
    bucket_basis       VARCHAR NOT NULL,         -- calibrated | raw
    bucket_reason      VARCHAR,                  -- off_format when coverage < floor
    segment            VARCHAR,
    metadata           JSON,                     -- extra batch columns
    scored_at          TIMESTAMPTZ NOT NULL,
    written_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_version, row_id)
);

-- Rows that could not be scored, with the reason; written with their batch.
CREATE TABLE quarantine (
    task_name     VARCHAR NOT NULL,
    task_version  VARCHAR NOT NULL,
    batch_uri     VARCHAR NOT NULL,
    batch_hash    VARCHAR NOT NULL,
    row_index     BIGINT NOT NULL,               -- position in the batch file
    row_id        VARCHAR,
    reason        VARCHAR NOT NULL,              -- null_text | empty_text | duplicate_id | already_scored | ...
    detail        VARCHAR,
    run_id        VARCHAR NOT NULL,
    quarantined_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_name, batch_uri, batch_hash, row_index)
);

-- Ground truth per row id, per task name (a row's truth does not change with the prompt).
-- History is kept: a correction supersedes the current label instead of overwriting it.
CREATE TABLE labels (
    task_name       VARCHAR NOT NULL,
    row_id          VARCHAR NOT NULL,
    label           VARCHAR NOT NULL,
    source          VARCHAR NOT NULL,
    inclusion_prob  DOUBLE,                      -- audit-sample inclusion probability; NULL = unknown
    imported_at     TIMESTAMPTZ NOT NULL,
    superseded_at   TIMESTAMPTZ,                 -- NULL = current label
    import_id       VARCHAR NOT NULL
);

-- Audit samples drawn for labelling, with each row's inclusion probability.
CREATE TABLE audit_samples (
    sample_id       VARCHAR NOT NULL,
    task_name       VARCHAR NOT NULL,
    task_version    VARCHAR NOT NULL,
    row_id          VARCHAR NOT NULL,
    stratum         VARCHAR NOT NULL,            -- the bucket it was drawn from
    inclusion_prob  DOUBLE NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (sample_id, row_id)
);

-- Versioned calibrators (JSON parameters, never pickle) and their life cycle.
CREATE TABLE calibrators (
    version         VARCHAR PRIMARY KEY,         -- content hash of the document
    task_name       VARCHAR NOT NULL,
    task_version    VARCHAR NOT NULL,
    method          VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,            -- candidate | champion | retired
    document        JSON NOT NULL,               -- the full calibrator document
    n_labels        BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

-- Every promotion decision, automatic or by a person, with its figures.
CREATE TABLE calibrator_events (
    task_version    VARCHAR NOT NULL,
    version         VARCHAR NOT NULL,
    event           VARCHAR NOT NULL,            -- fitted | promoted | rejected | retired | manual_promote | rollback
    actor           VARCHAR NOT NULL,            -- recalibration run id, or a person
    reason          VARCHAR,
    metrics         JSON,
    event_at        TIMESTAMPTZ NOT NULL
);

-- Calibration quality of one calibrator on one labeled window (raw and calibrated).
CREATE TABLE reliability_snapshots (
    snapshot_id        VARCHAR NOT NULL,
    task_name          VARCHAR NOT NULL,
    task_version       VARCHAR NOT NULL,
    calibrator_version VARCHAR,
    run_id             VARCHAR NOT NULL,
    scores             VARCHAR NOT NULL,         -- raw | calibrated
    segment            VARCHAR NOT NULL,         -- 'all' or a segment value
    n                  BIGINT NOT NULL,
    accuracy           DOUBLE,
    ece                DOUBLE,                   -- 15 equal-width bins
    ece_equal_mass     DOUBLE,
    ece_ci_low         DOUBLE,
    ece_ci_high        DOUBLE,
    mce                DOUBLE,
    nll                DOUBLE,
    brier              DOUBLE,
    bins               JSON,                     -- [{lower, upper, confidence, accuracy, count}]
    diagram_path       VARCHAR,
    created_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (snapshot_id, scores, segment)
);

-- Append-only re-application of a calibrator to stored raw scores.
CREATE TABLE decisions (
    task_version       VARCHAR NOT NULL,
    row_id             VARCHAR NOT NULL,
    calibrator_version VARCHAR NOT NULL,
    label              VARCHAR NOT NULL,
    confidence         DOUBLE NOT NULL,
    bucket             VARCHAR NOT NULL,
    bucket_reason      VARCHAR,
    run_id             VARCHAR NOT NULL,
    decided_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_version, row_id, calibrator_version)
);
