-- Which labeled rows each calibrator was fitted on, so no figure ever scores a
-- calibrator on its own training rows (the held-out rows are the others).
CREATE TABLE calibrator_fit_rows (
    version  VARCHAR NOT NULL,                   -- calibrators.version
    row_id   VARCHAR NOT NULL,
    PRIMARY KEY (version, row_id)
);
