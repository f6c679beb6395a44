"""Every label counts, with its sampling design stated (real DuckDB, no Prefect): 800 labels imported from a
file are convenience labels unless declared, and then thresholds cannot certify and says why; declared a
simple random sample (`--design random`) the same labels certify with equal weights, checked against an
independent Clopper-Pearson bound (scipy's beta); audit samples still certify with their inclusion
probabilities; bucket accuracy shows random labels' accuracy and flags convenience ones; an old warehouse
gets the designs its labels had."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from scipy.stats import beta
from typer.testing import CliRunner

from calscore.cli import app
from calscore.jobs.decisions import assign_buckets
from calscore.jobs.labels.audit import draw_audit_sample
from calscore.jobs.labels.importing import LabelFileError, import_labels
from calscore.jobs.labels.ingest import ingest
from calscore.jobs.reports.queries import load_rows, report_connection
from calscore.jobs.reports.thresholds import THRESHOLDS, thresholds_text
from calscore.jobs.spec import load_spec
from calscore.jobs.warehouse.connection import reader, writer
from calscore.jobs.warehouse.migrations import migration_files
from calscore.jobs.warehouse.views import create_views, run_query
import derived_tables

ROWS = 2000
LABELED = 800
TARGET = 0.90


def _task(folder: Path) -> Path:
    path = folder / "task.toml"
    path.write_text(
        """
name = "designs"

[model]
hub_id = "example/tiny-sentiment"
revision = "0123abcd"

[prompt]
template = "Review: {text}\\nSentiment:"

[labels]
positive = ["positive"]
negative = ["negative"]

[input]
location = "batches"

[warehouse]
path = "w.duckdb"

[calibration]
refit_after_new_labels = 100000
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def scored(tmp_path):
    """A task whose 2,000 rows were scored (no calibrator yet), the truth of every row, and 800 random ids."""
    spec = load_spec(_task(tmp_path))
    rng = np.random.default_rng(7)
    conf = rng.uniform(0.5, 1.0, ROWS)
    correct = rng.random(ROWS) < np.minimum(1.0, conf + 0.04)
    raw = np.where(rng.random(ROWS) < 0.5, "positive", "negative").astype(object)
    truth = np.where(correct, raw, np.where(raw == "positive", "negative", "positive")).astype(object)
    bucket, reason = assign_buckets(conf, np.ones(ROWS), spec.buckets, 0.0)
    ids = np.array([f"r{i:05d}" for i in range(ROWS)], dtype=object)
    at = datetime(2025, 3, 1, 22, tzinfo=timezone.utc)
    other = {"positive": "negative", "negative": "positive"}
    rows = pa.table({
        "task_version": [spec.task_version] * ROWS, "row_id": ids, "task_name": [spec.name] * ROWS,
        "run_id": ["run-1"] * ROWS, "batch_uri": ["b.parquet"] * ROWS, "batch_hash": ["h"] * ROWS,
        "model": ["m"] * ROWS, "text": [f"text {i}" for i in range(ROWS)],
        "label_logprobs": pa.array([[(r, float(np.log(c))), (other[r], float(np.log(1 - c)))]
                                    for r, c in zip(raw, conf)], pa.map_(pa.string(), pa.float64())),
        "coverage": np.ones(ROWS), "total_probability": conf, "raw_label": raw, "raw_confidence": conf,
        "truncated": [False] * ROWS, "calibrator_version": pa.nulls(ROWS, pa.string()), "label": raw,
        "confidence": pa.nulls(ROWS, pa.float64()), "bucket": list(bucket), "bucket_basis": ["raw"] * ROWS,
        "bucket_reason": list(reason), "scored_at": pa.array([at] * ROWS, pa.timestamp("us", tz="UTC")),
        "written_at": pa.array([at] * ROWS, pa.timestamp("us", tz="UTC")), "night": [at.date()] * ROWS,
    })
    with writer(spec.warehouse.path) as con:
        con.register("fixture_rows", rows)
        con.execute("INSERT INTO predictions BY NAME SELECT * FROM fixture_rows")
        derived_tables.rebuild(con)  # written directly, as no writer does
    sample = np.sort(rng.choice(ROWS, size=LABELED, replace=False))
    labels_file = tmp_path / "labels-800.csv"
    pacsv.write_csv(pa.table({"id": ids[sample], "label": truth[sample]}), labels_file)
    return {"spec": spec, "conf": conf, "truth": truth, "raw": raw, "ids": ids, "sample": sample,
            "file": labels_file, "task": tmp_path / "task.toml"}


def _stored(spec) -> list[tuple]:
    with reader(spec.warehouse.path) as con:
        return con.execute("SELECT design, labels.inclusion_prob, label_weight, is_audit_label, count(*) FROM labels "
                           "JOIN current_labels USING (task_name, row_id) WHERE superseded_at IS NULL "
                           "GROUP BY ALL").fetchall()


def _bucket_accuracy(spec) -> dict[str, dict]:
    with reader(spec.warehouse.path) as con:
        return {r["bucket"]: r for r in run_query(con, "bucket_accuracy").to_pylist()}


def _fixed_sequence(conf, correct, target, level=0.95):
    """An independent fixed-sequence scan with equal weights: thresholds from 0.99 down, each a one-sided
    Clopper-Pearson lower bound (scipy's beta quantile), starting at the first that could pass at k = n."""
    chosen, started = None, False
    for t in sorted(THRESHOLDS, reverse=True):
        sel = conf >= t
        n, k = int(sel.sum()), int(correct[sel].sum())
        could = n > 0 and beta.ppf(1 - level, n, 1) >= target
        if not started and not could:
            continue
        started = True
        low = beta.ppf(1 - level, k, n - k + 1) if 0 < k else 0.0
        if n == 0 or low < target:
            break
        chosen = (t, n, k, k / n, low)
    return chosen


def test_a_plain_import_is_convenience_and_says_it_will_not_certify(scored):
    spec = scored["spec"]
    result = ingest(spec, str(scored["file"]), None, None, trigger=False)
    text = "\n".join(result["report"])
    assert "design: 800 convenience" in text
    warning = [line for line in result["report"] if "convenience labels" in line]
    assert len(warning) == 1 and "never certifies" in warning[0] and "--design random" in warning[0]
    assert _stored(spec) == [("convenience", None, 1.0, False, LABELED)]

    out = thresholds_text(spec, target=TARGET)
    assert "no threshold can be chosen for 90%: there are no audit labels above 0.50" in out
    assert "0 with certifying labels (audit or random sample, never fitted on), 800 with convenience labels" in out
    assert "800 convenience label(s) are not used: chosen without a sampling design, they never certify" in out
    assert "--design random" in out

    buckets = _bucket_accuracy(spec)
    labeled = [b for b in buckets.values() if b["convenience_labels"]]
    assert sum(b["convenience_labels"] for b in labeled) == LABELED
    for b in buckets.values():
        assert b["audit_labels"] == 0 and b["estimated_accuracy"] is None
    for b in labeled:
        assert b["convenience_accuracy"] is not None and "convenience labels" in b["warning"]


def test_declared_random_the_same_labels_certify_with_equal_weights(scored):
    spec = scored["spec"]
    ingest(spec, str(scored["file"]), None, None, trigger=False)  # first as convenience, then re-declared
    result = ingest(spec, str(scored["file"]), None, None, trigger=False, design="random")
    text = "\n".join(result["report"])
    assert "800 new label(s) (0 correcting an earlier one), 0 unchanged" in text
    assert "design: 800 random (800 re-declared: same label, another design)" in text
    assert "random sample: 800 of the 2000 rows this task version scored, each included with probability 0.4" in text
    assert "never certifies" not in text
    assert _stored(spec) == [("random", pytest.approx(0.4), pytest.approx(2.5), True, LABELED)]

    sample, conf = scored["sample"], scored["conf"]
    correct = scored["raw"][sample] == scored["truth"][sample]
    expected = _fixed_sequence(conf[sample], correct, TARGET)
    assert expected is not None
    t, n, k, accuracy, low = expected
    out = thresholds_text(spec, target=TARGET)
    assert f"threshold for 90%: {t:.2f};" in out
    assert (f"with estimated accuracy {accuracy:.1%} (lower bound {low:.1%}, {n} audit labels, effective n {n})"
            in out)
    assert "convenience" not in out
    with report_connection(spec.warehouse.path) as con:
        rows = load_rows(con, spec.task_version, labeled_only=True)
    assert rows.is_audit_label.all() and np.allclose(rows.label_weight, 2.5)

    buckets = _bucket_accuracy(spec)
    for name, b in buckets.items():
        in_bucket = [i for i in sample if _bucket_of(spec, conf[i]) == name]
        assert b["audit_labels"] == len(in_bucket) and b["convenience_labels"] == 0 and b["warning"] is None
        if in_bucket:
            right = scored["raw"][in_bucket] == scored["truth"][in_bucket]
            assert b["estimated_accuracy"] == pytest.approx(right.mean())  # equal weights: the plain share


def _bucket_of(spec, confidence: float) -> str:
    return next(b.name for b in spec.buckets if confidence >= b.min)


def test_random_design_refuses_inclusion_probabilities_and_ids_from_nowhere(scored):
    spec = scored["spec"]
    with pytest.raises(LabelFileError, match="inclusion_prob column"):
        import_labels(spec, pa.table({"id": ["r00001"], "label": ["positive"], "inclusion_prob": [0.5]}), "f",
                      design="random")
    with pytest.raises(LabelFileError, match="none of them is one of its 2000 rows"):
        import_labels(spec, pa.table({"id": ["elsewhere"], "label": ["positive"]}), "f", design="random")
    with pytest.raises(LabelFileError, match="unknown label design"):
        import_labels(spec, pa.table({"id": ["r00001"], "label": ["positive"]}), "f", design="stratified")


def test_an_audit_sample_still_certifies_with_its_inclusion_probabilities(scored):
    spec = scored["spec"]
    sample = draw_audit_sample(spec, 300, seed=3)
    truth = dict(zip(scored["ids"], scored["truth"]))
    ids = sample["id"].to_pylist()
    probs = dict(zip(ids, sample["inclusion_prob"].to_pylist()))
    # the sample file as `labels sample` wrote it (inclusion_prob carried): audit by default
    half = ids[:150]
    report = import_labels(spec, pa.table({"id": half, "label": [truth[i] for i in half],
                                           "inclusion_prob": [probs[i] for i in half]}), "audit-a.csv")
    assert report.designs == {"audit": 150}
    # without the column, the ids are found in the recorded sample; --design audit is what the default chose
    rest = ids[150:]
    report = import_labels(spec, pa.table({"id": rest + ["r99999"], "label": [truth[i] for i in rest] + ["negative"]}),
                           "audit-b.csv", design="audit")
    assert report.designs == {"audit": 150} and report.inserted == 150
    assert report.rejected == [{"row": 150, "id": "r99999", "label": "negative",
                                "reason": "--design audit, but no inclusion probability (no inclusion_prob column, "
                                          "and the id is in no `labels sample` audit sample); declare --design "
                                          "random or convenience"}]
    with reader(spec.warehouse.path) as con:
        stored = dict(con.execute("SELECT row_id, label_weight FROM current_labels WHERE label_design = 'audit' "
                                  "AND is_audit_label").fetchall())
    assert stored == {i: pytest.approx(1 / probs[i]) for i in ids}
    out = thresholds_text(spec, target=0.80)
    assert "300 with certifying labels (audit or random sample, never fitted on)" in out and "convenience" not in out
    assert all(b["warning"] is None for b in _bucket_accuracy(spec).values())


def test_the_command_line_takes_the_design_and_says_what_a_plain_import_means(scored):
    runner = CliRunner()
    plain = runner.invoke(app, ["labels", "import", "--task", str(scored["task"]), str(scored["file"]),
                                "--no-trigger"])
    assert plain.exit_code == 0, plain.output
    assert "never certifies with them; if the ids are a simple random sample of the scored rows, import the file " \
           "again with --design random" in plain.output
    declared = runner.invoke(app, ["labels", "import", "--task", str(scored["task"]), str(scored["file"]),
                                   "--design", "random", "--no-trigger"])
    assert declared.exit_code == 0, declared.output
    assert "design: 800 random" in declared.output
    bad = runner.invoke(app, ["labels", "import", "--task", str(scored["task"]), str(scored["file"]),
                              "--design", "whatever"])
    assert bad.exit_code == 2 and "--design must be one of random, audit, convenience" in bad.output
    helped = runner.invoke(app, ["labels", "import", "--help"])
    words = " ".join(helped.output.replace("│", " ").split())  # rich wraps the help in a box
    assert "Example: calscore labels import --task infra/tasks/demo.toml --design random" in words
    assert "random: a simple random sample of all the rows this task version scored" in words


def test_an_old_warehouse_gets_the_designs_its_labels_had(tmp_path):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:  # a warehouse written before migration 008
        con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                    " applied_at TIMESTAMPTZ NOT NULL)")
        for number, name, sql in migration_files():
            if number < 8:
                con.execute(sql)
                con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [number, name])
        at = datetime(2025, 3, 2, tzinfo=timezone.utc)
        con.executemany(
            "INSERT INTO labels VALUES ('t', ?, 'positive', 'old', ?, ?, NULL, 'i')",
            [["audited", 0.25, at], ["reviewed", None, at]])
    with writer(path) as con:  # opening it for writing applies the pending migrations
        designs = dict(con.execute("SELECT row_id, design FROM labels").fetchall())
        create_views(con, temporary=True)
        current = {r[0]: r[1:] for r in con.execute(
            "SELECT row_id, label_design, is_audit_label, label_weight FROM current_labels").fetchall()}
    assert designs == {"audited": "audit", "reviewed": "convenience"}
    assert current == {"audited": ("audit", True, 4.0), "reviewed": ("convenience", False, 1.0)}
