"""The example queries and the predictions_current view, rewritten so that their cost is bounded by what they
read (issue #20: the volumes from current_decisions' few columns, the accuracies from the labeled rows only),
return exactly the rows they returned before: the SQL before is kept here as the reference and both run on the same
seeded warehouse, with labels of every design, out-of-fold evidence for fit rows, a superseded label, a
label whose row has no prediction and another task's labels on the same row ids, so that every branch of the judging (held out, out of fold, no evidence) is hit."""
from __future__ import annotations

import math

import duckdb
import pytest

from calscore.jobs.warehouse.connection import writer
from calscore.jobs.warehouse.views import create_views, query_files, run_query
from report_fixtures import fill_report_warehouse

# sql/views/predictions_current.sql before `is_labeled` and `is_audit_label` were written so that DuckDB can read
# `where is_labeled` as an inner join of the labels into the predictions
OLD_PREDICTIONS_CURRENT = """
-- What did we decide for each row, with which calibrator, and was it right (where a current label exists)?
-- A label is judged against a prediction by a map that never saw it (evidence_basis):
--   'held_out': the deciding calibrator was not fitted on the row, so its own decision is judged;
--   'out_of_fold': it was, so its recipe's out-of-fold prediction (fitted on the other folds, table evidence) is;
--   NULL: no current label, or a fit row without out-of-fold evidence (recalibrate to build it).
-- evidence_label / evidence_confidence / evidence_bucket are that prediction (the decision itself when held out),
-- evidence_probs its probabilities when out-of-fold;
-- is_labeled: a label with such evidence; is_correct: evidence_label = true_label;
-- is_audit_label: a held-out label from a probability sample (label_design 'audit' or 'random'): the labels that
-- certify a threshold for the deployed map; a 'convenience' label is judged too but never certifies;
-- has_label: any current label (used_in_fit tells the fit rows apart).
with decided_predictions as (

    select * from decided_predictions

),

current_labels as (

    select * from current_labels

),

calibrators as (

    -- method is 'auto/platt' for an auto calibrator: its recipe (what its evidence is filed under) is 'platt'
    select version, method, regexp_replace(method, '^auto/', '') as recipe, status from calibrators

),

fit_rows as (

    select version, row_id from calibrator_fit_rows

),

evidence as (

    select task_version, recipe, row_id, probs, label, confidence, bucket, bucket_reason from evidence

),

joined as (

    select
        decided_predictions.*,
        calibrators.method as calibrator_method,
        calibrators.status as calibrator_status,
        current_labels.true_label,
        current_labels.label_source,
        current_labels.inclusion_prob,
        current_labels.label_design,
        current_labels.is_audit_label as is_sample_label,
        current_labels.label_weight,
        fit_rows.row_id is not null as used_in_fit,
        case
            when current_labels.true_label is null then null
            when fit_rows.row_id is null then 'held_out'
            when evidence.row_id is not null then 'out_of_fold'
        end as evidence_basis,
        evidence.probs as evidence_probs,  -- out-of-fold rows: every label's probability, in the task's label order
        evidence.label as oof_label,
        evidence.confidence as oof_confidence,
        evidence.bucket as oof_bucket,
        evidence.bucket_reason as oof_bucket_reason

    from decided_predictions
    left join current_labels
        on decided_predictions.task_name = current_labels.task_name
        and decided_predictions.row_id = current_labels.row_id
    left join calibrators
        on decided_predictions.calibrator_version = calibrators.version
    left join fit_rows
        on decided_predictions.calibrator_version = fit_rows.version
        and decided_predictions.row_id = fit_rows.row_id
    left join evidence
        on decided_predictions.task_version = evidence.task_version
        and calibrators.recipe = evidence.recipe
        and decided_predictions.row_id = evidence.row_id

),

final as (

    select
        * exclude (label_logprobs, text, is_sample_label, oof_label, oof_confidence, oof_bucket, oof_bucket_reason),
        case evidence_basis when 'out_of_fold' then oof_label when 'held_out' then label end as evidence_label,
        case evidence_basis when 'out_of_fold' then oof_confidence when 'held_out' then decision_confidence end
            as evidence_confidence,
        case evidence_basis when 'out_of_fold' then oof_bucket when 'held_out' then bucket end as evidence_bucket,
        case evidence_basis when 'out_of_fold' then oof_bucket_reason when 'held_out' then bucket_reason end
            as evidence_bucket_reason,
        coalesce(is_sample_label, false) and evidence_basis = 'held_out' as is_audit_label,
        true_label is not null as has_label,
        evidence_basis is not null as is_labeled,
        case evidence_basis when 'out_of_fold' then oof_label when 'held_out' then label end = true_label
            as is_correct,
        raw_label = true_label as raw_correct,
        label_logprobs,
        text

    from joined

)

select * from final
"""

# sql/queries/bucket_accuracy.sql before it took the volumes from current_decisions and the labels alone
OLD_BUCKET_ACCURACY = """
-- How accurate is each decision bucket, estimated for all its rows from the audit- and random-sample labels (and what do convenience labels say)?
with predictions_current as (

    select * from predictions_current

),

audited as (

    -- labels of a sampling design (label_design 'audit' or 'random'), each judged in the bucket of its held-out or
    -- out-of-fold prediction: an estimate for all the bucket's rows
    select * exclude (bucket), evidence_bucket as bucket
    from predictions_current
    where is_labeled and label_design in ('audit', 'random')

),

convenience as (

    -- labels chosen without a design (a review queue, hand-picked): shown, never an estimate for the bucket
    select * exclude (bucket), evidence_bucket as bucket
    from predictions_current
    where is_labeled and label_design = 'convenience'

),

volume as (

    select task_name, task_version, bucket, count(*) as rows, avg(decision_confidence) as mean_confidence
    from predictions_current
    group by all

),

accuracy as (

    select
        task_version,
        bucket,
        count(*) as audit_labels,
        -- weights 1 / inclusion probability undo the audit's over-sampling of small buckets (equal for random)
        sum(label_weight * cast(is_correct as double)) / sum(label_weight) as estimated_accuracy

    from audited
    group by all

),

convenience_accuracy as (

    select
        task_version,
        bucket,
        count(*) as convenience_labels,
        avg(cast(is_correct as double)) as convenience_accuracy

    from convenience
    group by all

),

final as (

    select
        volume.task_name,
        volume.task_version,
        volume.bucket,
        volume.rows,
        volume.mean_confidence,
        coalesce(accuracy.audit_labels, 0) as audit_labels,
        accuracy.estimated_accuracy,
        coalesce(convenience_accuracy.convenience_labels, 0) as convenience_labels,
        convenience_accuracy.convenience_accuracy,
        case when convenience_accuracy.convenience_labels > 0 then
            'convenience labels: not a sample of the bucket, so their accuracy may not hold for its rows; '
            || 'they never certify (import a random sample with --design random)'
        end as warning

    from volume
    left join accuracy
        on volume.task_version = accuracy.task_version
        and volume.bucket = accuracy.bucket
    left join convenience_accuracy
        on volume.task_version = convenience_accuracy.task_version
        and volume.bucket = convenience_accuracy.bucket

)

select * from final
order by task_name, task_version, mean_confidence desc
"""

# sql/queries/threshold_volume.sql before it took the volumes from current_decisions and the audit labels alone
OLD_THRESHOLD_VOLUME = """
-- For thresholds 0.50 to 0.95, how many rows would be automated and how accurate are they (audit labels, weighted)?
with predictions_current as (

    select * from predictions_current

),

thresholds as (

    select i / 100 as threshold from range(50, 100, 5) as r(i)

),

automatable as (

    -- off-format rows go to manual whatever their confidence
    select
        task_name,
        task_version,
        decision_confidence,
        cast(floor(decision_confidence * 20) as integer) as near_step,
        is_audit_label,
        label_weight,
        is_correct

    from predictions_current
    where coalesce(bucket_reason, '') <> 'off_format'

),

per_step as (

    -- one pass over the rows: each counted once, at its step s (s / 20 <= confidence < (s + 1) / 20, compared
    -- exactly as `confidence >= threshold` is, since confidence * 20 can round across a whole number)
    select
        task_name,
        task_version,
        near_step + case
            when decision_confidence >= (near_step + 1) * 5 / 100 then 1
            when decision_confidence < near_step * 5 / 100 then -1
            else 0
        end as step,
        count(*) as rows,
        count(*) filter (where is_audit_label) as audit_labels,
        sum(label_weight * cast(is_correct as double)) filter (where is_audit_label) as correct_weight,
        sum(label_weight) filter (where is_audit_label) as audit_weight

    from automatable
    group by all

),

final as (

    -- a threshold automates the rows of every step at or above it (a few dozen steps, not every row)
    select
        per_step.task_name,
        per_step.task_version,
        thresholds.threshold,
        cast(sum(per_step.rows) as bigint) as rows,
        cast(sum(per_step.audit_labels) as bigint) as audit_labels,
        -- weights 1 / inclusion probability undo the audit's over-sampling of small buckets
        sum(per_step.correct_weight) / sum(per_step.audit_weight) as estimated_accuracy

    from thresholds
    inner join per_step
        on per_step.step * 5 / 100 >= thresholds.threshold
    group by all

)

select * from final
order by task_name, task_version, threshold
"""

# sql/queries/segment_gaps.sql before it read the labeled rows' copy (migration 016)
OLD_SEGMENT_GAPS = """
-- Which segment's confidence is furthest from its observed accuracy (weighted labeled rows, each judged by a map that never saw it)?
-- Reads the labeled rows only: under `where is_labeled` DuckDB joins the current labels into the predictions by row
-- id (a Bloom filter of the labels' row ids in the scan), never the labels, fit rows and evidence to every row.
with predictions_current as (

    select * from predictions_current

),

labeled as (

    select * from predictions_current where is_labeled

),

per_segment as (

    select
        task_name,
        task_version,
        coalesce(segment, '(none)') as segment,
        count(*) as labeled_rows,
        sum(label_weight * evidence_confidence) / sum(label_weight) as mean_confidence,
        sum(label_weight * cast(is_correct as double)) / sum(label_weight) as accuracy

    from labeled
    group by all

),

final as (

    select
        *,
        -- positive: the model is overconfident in this segment
        mean_confidence - accuracy as gap

    from per_segment

)

select * from final
order by task_name, abs(gap) desc
"""

# sql/views/bucket_counts_nightly.sql before it read decision_counts and the labeled rows' copy (migration 016)
OLD_BUCKET_COUNTS_NIGHTLY = """
-- How many rows went to each bucket each night, how confident were they, and how accurate on the labeled ones?
with decided_predictions as (

    select * from decided_predictions

),

predictions_current as (

    select * from predictions_current

),

per_bucket as (

    -- every row, from the decisions alone
    select
        task_name,
        task_version,
        night,
        bucket,
        count(*) as rows,
        avg(decision_confidence) as mean_confidence,
        count(*) filter (where bucket_reason = 'off_format') as off_format_rows

    from decided_predictions
    group by all

),

labeled as (

    -- the labeled rows only: the join with the labels never runs over the unlabeled ones; each judged in the
    -- bucket its held-out (or out-of-fold) prediction falls in
    select
        task_version,
        night,
        evidence_bucket as bucket,
        count(*) filter (where is_labeled) as labeled_rows,
        count(*) filter (where is_correct) as correct_rows,
        -- weighted by 1 / inclusion probability: an estimate for all the bucket's rows
        sum(label_weight * cast(is_correct as double)) / nullif(sum(label_weight) filter (where is_labeled), 0)
            as weighted_accuracy

    from predictions_current
    where is_labeled
    group by all

),

final as (

    select
        per_bucket.task_name,
        per_bucket.task_version,
        per_bucket.night,
        per_bucket.bucket,
        per_bucket.rows,
        per_bucket.rows / sum(per_bucket.rows) over (partition by per_bucket.task_version, per_bucket.night)
            as share_of_night,
        per_bucket.mean_confidence,
        per_bucket.off_format_rows,
        coalesce(labeled.labeled_rows, 0) as labeled_rows,
        coalesce(labeled.correct_rows, 0) as correct_rows,
        labeled.correct_rows / nullif(labeled.labeled_rows, 0) as labeled_accuracy,
        labeled.weighted_accuracy

    from per_bucket
    left join labeled
        on per_bucket.task_version = labeled.task_version
        and per_bucket.night = labeled.night
        and per_bucket.bucket = labeled.bucket

)

select * from final
"""

# the query whose text did not change but which reads a rewritten view (bucket_counts_nightly)
UNCHANGED = ("nightly_automation",)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("bounded") / "calscore.duckdb"
    fill_report_warehouse(path)
    with writer(path) as con:
        create_views(con)
        # fit rows: every third labeled row, for the calibrator that decided it (before: no fit rows at all)
        con.execute("insert into calibrator_fit_rows select distinct d.calibrator_version, d.row_id"
                    " from current_decisions d join current_labels l using (task_name, row_id)"
                    " where d.calibrator_version is not null and hash(d.row_id) % 3 = 0")
        fit = con.execute(
            "select f.version, f.row_id, regexp_replace(c.method, '^auto/', '') as recipe, c.task_version"
            " from calibrator_fit_rows f join calibrators c on c.version = f.version order by f.row_id").fetchall()
        assert len(fit) > 20
        # out-of-fold evidence for two thirds of the fit rows (the rest stay without: is_labeled false)
        for i, (version, row_id, recipe, tv) in enumerate(fit):
            if i % 3:
                con.execute("insert into evidence values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [tv, recipe, row_id, i % 5, [0.3, 0.7], "negative" if i % 2 else "positive",
                             0.55 + (i % 40) / 100, ["auto", "review", "manual"][i % 3],
                             "off_format" if i % 7 == 0 else None])
        # every design: some labels random, some convenience, some without a design (written before migration 008)
        con.execute("update labels set design = case hash(row_id) % 4 when 0 then 'random' when 1 then 'convenience'"
                    " when 2 then null else design end where superseded_at is null")
        con.execute("insert into labels select task_name, 'no-such-row', label, source, 0.5, imported_at, null,"
                    " import_id, 'audit' from labels limit 1")
        # another task's labels on the same row ids: never this task's (the view joins on row_id, then task_name)
        con.execute("insert into labels select 'another-task', row_id, case label when 'positive' then 'negative'"
                    " else 'positive' end, source, 0.5, imported_at, null, import_id, 'audit' from labels"
                    " where superseded_at is null and task_name <> 'another-task' limit 40")
    return path


@pytest.fixture
def con(warehouse):
    c = duckdb.connect(str(warehouse), read_only=True)
    yield c
    c.close()


def _rows(con, sql: str) -> list[tuple]:
    """The rows of `sql` in a canonical order, floats to 12 significant digits (a sum's last bits depend on the
    order DuckDB's threads add in, before as after)."""
    def norm(v):
        if isinstance(v, float):
            return None if math.isnan(v) else float(f"{v:.12g}")
        if isinstance(v, dict):
            return tuple(sorted((k, norm(x)) for k, x in v.items()))
        if isinstance(v, list):
            return tuple(norm(x) for x in v)
        return v
    rows = [tuple(norm(v) for v in row) for row in con.sql(sql).fetchall()]
    return sorted(rows, key=repr)


def _before(sql: str) -> str:
    return sql.replace("from predictions_current", "from predictions_current_before")


def test_the_fixture_hits_every_branch(con):
    got = dict(con.sql("select coalesce(evidence_basis, case when has_label then 'no evidence' else 'unlabeled' end),"
                       " count(*) from predictions_current group by all").fetchall())
    assert set(got) == {"held_out", "out_of_fold", "no evidence", "unlabeled"}, got
    designs = {d for (d,) in con.sql("select distinct label_design from predictions_current where is_labeled")
               .fetchall()}
    assert designs == {"audit", "random", "convenience"}
    assert con.sql("select count(*) from predictions_current where is_audit_label is null").fetchall()[0][0] > 0


def test_predictions_current_returns_the_rows_it_returned_before(con):
    con.execute(f"create temp view predictions_current_before as {OLD_PREDICTIONS_CURRENT}")
    columns = ", ".join(f'"{c}"' for c in con.sql("select * from predictions_current limit 0").columns)
    assert columns == ", ".join(f'"{c}"' for c in con.sql("select * from predictions_current_before limit 0").columns)
    new, old = (_rows(con, f"select {columns} from {v}") for v in ("predictions_current", "predictions_current_before"))
    assert len(new) == con.sql("select count(*) from predictions").fetchall()[0][0]
    assert new == old
    # the filters the queries use select the same rows
    for where in ("is_labeled", "is_audit_label", "has_label and not is_labeled", "not is_audit_label"):
        assert _rows(con, f"select row_id from predictions_current where {where}") == \
            _rows(con, f"select row_id from predictions_current_before where {where}"), where


@pytest.mark.parametrize("name, before", [("bucket_accuracy", OLD_BUCKET_ACCURACY),
                                          ("threshold_volume", OLD_THRESHOLD_VOLUME),
                                          ("segment_gaps", OLD_SEGMENT_GAPS),
                                          *[(name, None) for name in UNCHANGED]])
def test_query_returns_the_rows_it_returned_before(con, name, before):
    """Each query as it reads now against the SQL before, on the view before; same rows, in the same order."""
    con.execute(f"create or replace temp view predictions_current_before as {OLD_PREDICTIONS_CURRENT}")
    sql = query_files()[name].strip().rstrip(";")
    if before is None:  # the text did not change: before, it read the view before (through bucket_counts_nightly)
        con.execute(f"create or replace temp view bucket_counts_nightly_before as {_before(OLD_BUCKET_COUNTS_NIGHTLY)}")
        before = _before(sql).replace("from bucket_counts_nightly", "from bucket_counts_nightly_before")
    else:
        before = _before(before)
    new, old = run_query(con, name).to_pylist(), con.sql(before).to_arrow_table().to_pylist()
    assert len(new) == len(old) > 0
    norm = lambda r: {k: float(f"{v:.12g}") if isinstance(v, float) else v for k, v in r.items()}  # noqa: E731
    assert [norm(r) for r in new] == [norm(r) for r in old]
    assert sorted(map(repr, map(norm, new))) == sorted(map(repr, map(norm, old)))


def test_bucket_counts_nightly_returns_the_rows_it_returned_before(con):
    """The view itself (a dashboard reads it for recent nights), against its SQL before, on the view before."""
    con.execute(f"create or replace temp view predictions_current_before as {OLD_PREDICTIONS_CURRENT}")
    new = _rows(con, "select * from bucket_counts_nightly")
    assert len(new) > 4
    assert new == _rows(con, _before(OLD_BUCKET_COUNTS_NIGHTLY))
