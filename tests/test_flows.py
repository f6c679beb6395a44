"""The loop on real Prefect (test harness), a real DuckDB file and a tiny real model (the two-night story with
a promotion runs on the lookup backend: tests/test_lookup_backend.py)."""
from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flow_fixtures import task_toml, write_batch

pytestmark = pytest.mark.usefixtures("prefect_harness")


def q(task_dir, sql, params=None):
    con = duckdb.connect(str(task_dir / "w.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def label_file(path, truth: dict[str, str], ids, inclusion_prob=None):
    table = {"id": list(ids), "label": [truth[i] for i in ids]}
    if inclusion_prob is not None:
        table["inclusion_prob"] = [inclusion_prob] * len(ids)
    pq.write_table(pa.table(table), path)
    return path


def test_bad_rows_are_quarantined_once_with_reasons(tmp_path, tiny_model):
    from calscore.flows.nightly import nightly_scoring

    task = task_toml(tmp_path, tiny_model)
    write_batch(tmp_path, "n1", 5)
    nightly_scoring(str(task))
    table = pa.table({
        "id": ["r00001", "n2", "n3", "n4", "n4", None, "n6"],  # r00001 was scored last night
        "text": ["again", None, "   ", "fine text", "dup", "no id", "x" * 20_000],  # the last is huge
        "category": ["a"] * 7,
    })
    pq.write_table(table, tmp_path / "batches" / "n2.parquet")
    summary = nightly_scoring(str(task))
    assert summary["rows_scored"] == 2 and summary["rows_quarantined"] == 5
    reasons = q(tmp_path, "SELECT row_index, row_id, reason FROM quarantine ORDER BY row_index")
    assert reasons == [(0, "r00001", "already_scored"), (1, "n2", "null_text"), (2, "n3", "empty_text"),
                       (4, "n4", "duplicate_id"), (5, None, "null_id")]
    assert q(tmp_path, "SELECT truncated FROM predictions WHERE row_id = 'n6'") == [(True,)]
    nightly_scoring(str(task))  # nothing new: quarantine rows are not written twice
    assert q(tmp_path, "SELECT count(*) FROM quarantine") == [(5,)]


def test_off_format_rows_go_to_the_last_bucket(tmp_path, tiny_model):
    from calscore.flows.nightly import nightly_scoring

    task = task_toml(tmp_path, tiny_model, coverage_floor=0.99)  # a random tiny model never answers in format
    write_batch(tmp_path, "n1", 8)
    nightly_scoring(str(task))
    assert q(tmp_path, "SELECT DISTINCT bucket, bucket_reason FROM predictions") == [("manual", "off_format")]


def test_label_import_is_idempotent_and_keeps_history(tmp_path, tiny_model):
    from calscore.flows.labels import ingest_labels
    from calscore.flows.nightly import nightly_scoring

    task = task_toml(tmp_path, tiny_model, refit_after=1000)
    _, truth = write_batch(tmp_path, "n1", 10)
    nightly_scoring(str(task))
    ids = list(truth)[:6]
    path = label_file(tmp_path / "l.parquet", truth, ids)
    first = ingest_labels(str(task), file=str(path))
    again = ingest_labels(str(task), file=str(path))
    assert first["inserted"] == 6 and again["inserted"] == 0
    assert q(tmp_path, "SELECT count(*) FROM labels") == [(6,)]

    flipped = {i: ("negative" if truth[i] == "positive" else "positive") for i in ids[:2]}
    pq.write_table(pa.table({"id": ids[:2] + ["unknown-id", "r00003"],
                             "label": [flipped[i] for i in ids[:2]] + ["positive", "maybe"]}), tmp_path / "fix.parquet")
    fix = ingest_labels(str(task), file=str(tmp_path / "fix.parquet"), source="reviewer-2")
    report = "\n".join(fix["report"])
    assert "3 new label(s) (2 correcting an earlier one)" in report and "1 rejected" in report
    assert "'maybe'" in report and "1 label(s) for ids with no prediction yet" in report
    history = q(tmp_path, "SELECT label, source, superseded_at IS NULL FROM labels WHERE row_id = ? ORDER BY imported_at", [ids[0]])
    assert history == [(truth[ids[0]], "l.parquet", False), (flipped[ids[0]], "reviewer-2", True)]


def test_champion_changes_only_when_the_challenger_is_better(tmp_path, tiny_model):
    import json

    from calscore.flows.labels import ingest_labels
    from calscore.flows.nightly import nightly_scoring
    from calscore.flows.recalibration import recalibration

    task = task_toml(tmp_path, tiny_model, min_labels=20, refit_after=10_000)
    _, truth = write_batch(tmp_path, "n1", 200)
    nightly_scoring(str(task))
    ids = list(truth)
    ingest_labels(str(task), file=str(label_file(tmp_path / "a.parquet", truth, ids[:120])))
    first = recalibration(str(task))
    ingest_labels(str(task), file=str(label_file(tmp_path / "b.parquet", truth, ids[120:])))
    second = recalibration(str(task))
    # the second comparison is against the champion, on labels newer than its fit window
    assert first["promoted"] and "the champion" in second["decision"]
    decisions = q(tmp_path, "SELECT event, metrics FROM calibrator_events WHERE event IN ('promoted', 'rejected') ORDER BY event_at")
    assert len(decisions) == 2
    for event, figures in decisions:
        comparison = json.loads(figures)["comparison"]  # the paired bootstrap's one-sided 95% bounds
        better = comparison["nll_gain"]["low"] > 0 and comparison["ece_increase"]["low"] <= 0
        assert (event == "promoted") == (better or json.loads(figures)["refresh"])  # a refresh has no gain to test
        assert json.loads(figures)["evaluation"] == "out-of-fold"
    champions = q(tmp_path, "SELECT count(*) FROM calibrators WHERE status = 'champion'")[0][0]
    assert champions == (1 if any(e == "promoted" for e, _ in decisions) else 0)


def test_writing_a_staged_batch_twice_writes_it_once(tmp_path, tiny_model):
    """The writer alone, without Prefect: a second load of the same batch is a no-op and cleans up."""
    from calscore.jobs.batches.files import discover
    from calscore.jobs.warehouse.writer import write_staged
    from calscore.jobs.warehouse.runs import start_run
    from calscore.jobs.spec import load_spec
    from calscore.jobs.batches.stage import get_scorer, score_batch

    spec = load_spec(task_toml(tmp_path, tiny_model))
    write_batch(tmp_path, "n1", 12)
    [ref] = discover(spec.input)
    run_id = start_run(spec.warehouse.path, spec.name, spec.task_version, "score")
    first = score_batch(spec, ref, run_id, get_scorer(spec), None)
    assert write_staged(spec, first, run_id)["rows_scored"] == 12
    again = score_batch(spec, ref, run_id, get_scorer(spec), None)  # e.g. a worker that retried
    assert again.rows_scored == 12  # scoring never reads the warehouse: the writer knows the batch is done
    assert write_staged(spec, again, run_id) == {"rows_scored": 0, "rows_quarantined": 0, "skipped": True}
    assert not Path(again.manifest).exists() and not Path(again.folder).exists()  # staged files cleaned up
    assert q(tmp_path, "SELECT count(*) FROM predictions") == [(12,)]
    assert q(tmp_path, "SELECT count(*) FROM quarantine") == [(0,)]


def test_an_interrupted_batch_keeps_its_complete_parts_and_the_retry_scores_only_the_rest(tmp_path, tiny_model,
                                                                                          monkeypatch):
    """A 5,000-row batch is staged in parts of CHUNK_ROWS rows: a worker that dies after the first part loses
    only the part it was scoring; the retry reuses the first and the batch is written exactly once."""
    import calscore.jobs.batches.stage as stage
    from calscore.jobs.batches.files import discover
    from calscore.jobs.spec import load_spec
    from calscore.jobs.warehouse.runs import start_run
    from calscore.jobs.warehouse.writer import write_staged

    spec = load_spec(task_toml(tmp_path, tiny_model))
    write_batch(tmp_path, "big", 5000)
    [ref] = discover(spec.input)
    run_id = start_run(spec.warehouse.path, spec.name, spec.task_version, "score")

    class WorkerDied(Exception):
        pass

    def die_after_the_first_part(done, total):
        if done >= stage.CHUNK_ROWS:
            raise WorkerDied
    with pytest.raises(WorkerDied):
        stage.score_batch(spec, ref, run_id, stage.get_scorer(spec), None, on_chunk=die_after_the_first_part)

    scored_rows = []
    real_stage_part = stage._stage_part
    monkeypatch.setattr(stage, "_stage_part", lambda *a: scored_rows.append(a[-2].num_rows) or real_stage_part(*a))
    staged = stage.score_batch(spec, ref, run_id, stage.get_scorer(spec), None)
    assert staged.parts == ["part-00000", "part-00001", "part-00002"] and staged.rows_in == 5000
    assert scored_rows == [2048, 904]  # the first part was reused, not scored again
    assert write_staged(spec, staged, run_id)["rows_scored"] == 5000
    assert q(tmp_path, "SELECT count(*), count(DISTINCT row_id) FROM predictions") == [(5000, 5000)]


def test_a_scoring_run_brings_an_older_schema_up_to_date_under_its_own_lock(tmp_path, tiny_model):
    """A warehouse left at an older schema (here the one of migration 8): the nightly run migrates it itself (its
    lock's writer) instead of refusing with 'run calscore init', then reads the champion and scores."""
    import duckdb

    from calscore.flows.nightly import nightly_scoring
    from calscore.jobs.warehouse.migrations import migration_files

    task = task_toml(tmp_path, tiny_model)
    write_batch(tmp_path, "n1", 20)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                    " applied_at TIMESTAMPTZ NOT NULL)")
        for number, name, sql in migration_files():
            if number <= 8:
                con.execute(sql)
                con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [number, name])
    assert nightly_scoring(str(task))["rows_scored"] == 20
    latest = [number for number, _, _ in migration_files()]
    assert [v for (v,) in q(tmp_path, "SELECT version FROM schema_migrations ORDER BY version")] == latest
