"""A filled warehouse for the report tests: two nights of a miscalibrated model, audits, labels, calibrators.

`fill_report_warehouse(path)` creates the warehouse with `jobs.warehouse.writer`
(so the real migrations) and inserts, through Arrow, what the flows would have
written over two nights, and returns the truths it inserted so tests can
recompute every figure independently. It is one function so that it can later
be swapped for a warehouse filled by the real flows.

The story (UTC):
- night 1 (2025-03-01 22:00): 300 rows scored with no calibrator (buckets on the raw confidence);
- 03-02: an audit sample of 150 night-1 rows (stratified by bucket, inclusion
  probabilities recorded) is labeled, plus 20 review-queue labels with no
  inclusion probability; a recalibration fits temperature scaling (promoted,
  re-applied to all night-1 rows), then Platt scaling (promoted by a person,
  retiring the first, re-applied to 250 night-1 rows), then isotonic (rejected);
- night 2 (2025-03-02 22:00): 300 rows scored with the Platt champion;
- 03-03: an audit of 150 night-2 rows is labeled and one night-1 label is corrected.

The model is overconfident (log-odds x 2.2) and leans positive; in the
`neutral` segment it leans much harder, a bias that only the per-segment
figures show.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
from scipy.special import log_expit, logit

from calscore.calibration_store.document import build_document, canonical_json
from calscore.calibration_store.evaluation import heldout_report
from calscore.calibration_store.metrics import raw_probs, reliability_report
from calscore.calibration_store.registry import make_calibrator
import derived_tables
from decision_rows import write_decisions_by_key
from calscore.jobs.labels.audit import allocate
from calscore.jobs.decisions import assign_buckets
from calscore.jobs.reports.health import health_checks, record_checks
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import writer

LABELS = ("positive", "negative")
SEGMENTS = ("strong", "medium", "weak", "neutral")
NIGHTS = (datetime(2025, 3, 1, 22, 0, tzinfo=timezone.utc), datetime(2025, 3, 2, 22, 0, tzinfo=timezone.utc))
ROWS_PER_NIGHT = 300
AUDIT_PER_NIGHT = 150
REVIEW_LABELS = 20
COVERAGE_FLOOR = 0.5


def report_task(path: Path) -> dict:
    """The task file's fields of the fixture's task (a hub model id: task_version needs no model files)."""
    return {
        "name": "report-demo",
        "coverage_floor": COVERAGE_FLOOR,
        "model": {"hub_id": "example/tiny-sentiment", "revision": "0123abcd"},
        "prompt": {"template": "Review: {text}\nSentiment:"},
        "labels": {"positive": ["positive", "Positive"], "negative": ["negative", "Negative"]},
        "input": {"location": str(Path(path).parent / "batches"), "segment_column": "category"},
        "warehouse": {"path": str(path)},
        "calibration": {"method": "platt"},
    }


def report_spec(path: Path) -> TaskSpec:
    """The task the fixture's rows belong to."""
    return TaskSpec.model_validate(report_task(path))


def report_task_file(path: Path, out: Path) -> Path:
    """The fixture's task as a TOML file at `out`, for the commands (`calscore ... --task`). JSON strings and
    lists are TOML's too; top-level values come before the tables."""
    lines = []
    for key, value in report_task(path).items():
        if isinstance(value, dict):
            lines.append(f"\n[{key}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in value.items()]
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(out)


def _model_rows(rng: np.random.Generator, n: int, night: int) -> dict[str, np.ndarray]:
    segment = rng.choice(np.array(SEGMENTS, dtype=object), size=n, p=[0.3, 0.3, 0.2, 0.2])
    spread = {"strong": (9.0, 1.0), "medium": (4.0, 1.5), "weak": (2.0, 2.0), "neutral": (2.0, 2.0)}
    q = np.array([rng.beta(*spread[s]) for s in segment])  # true P(the row's strong side)
    side = rng.random(n) < 0.5
    p_pos = np.where(side, q, 1.0 - q)  # true P(positive)
    y = np.where(rng.random(n) < p_pos, 0, 1)  # label index: 0 positive, 1 negative
    lean = np.where(segment == "neutral", 1.6, 0.4)
    z = 2.2 * logit(np.clip(p_pos, 1e-4, 1 - 1e-4)) + lean + rng.normal(0, 0.3, n)  # model log-odds pos vs neg
    coverage = np.where(rng.random(n) < 0.05, rng.uniform(0.2, 0.45, n), rng.beta(8, 2, n))
    coverage = np.clip(coverage, 0.2, 0.999)
    logprobs = np.column_stack([np.log(coverage) + log_expit(z), np.log(coverage) + log_expit(-z)])
    probs = raw_probs(logprobs)
    raw_idx = probs.argmax(axis=1)
    ids = np.array([f"n{night + 1}-{i:04d}" for i in range(n)], dtype=object)
    return {
        "row_id": ids,
        "segment": segment,
        "y": y,
        "logprobs": logprobs,
        "coverage": coverage,
        "raw_idx": raw_idx,
        "raw_confidence": probs.max(axis=1),
        "total_probability": coverage * probs.max(axis=1),
    }


def _audit(rng: np.random.Generator, buckets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices drawn per bucket (as jobs.audit does) and each one's inclusion probability."""
    sizes = {b: int((buckets == b).sum()) for b in dict.fromkeys(buckets)}
    chosen, probs = [], []
    for bucket, k in allocate(sizes, n).items():
        members = np.flatnonzero(buckets == bucket)
        if k:
            chosen.extend(rng.choice(members, size=k, replace=False))
            probs.extend([k / len(members)] * k)
    order = np.argsort(chosen)
    return np.asarray(chosen)[order], np.asarray(probs)[order]


def _insert(con, table: str, rows: dict) -> None:
    data = pa.table(rows)
    con.register("fixture_rows", data)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM fixture_rows")
    con.unregister("fixture_rows")


def _ts(values) -> pa.Array:
    return pa.array(list(values), pa.timestamp("us", tz="UTC"))


def fill_report_warehouse(path: Path) -> dict:
    """Create and fill a warehouse at `path`; return the truths inserted (see the module docstring)."""
    path = Path(path)
    spec = report_spec(path)
    tv, name = spec.task_version, spec.name
    rng = np.random.default_rng(20250301)
    labels = np.array(LABELS, dtype=object)
    n1 = _model_rows(rng, ROWS_PER_NIGHT, 0)
    n2 = _model_rows(rng, ROWS_PER_NIGHT, 1)

    # -- night 1: no calibrator, buckets on the raw confidence --------------------------
    b1, r1 = assign_buckets(n1["raw_confidence"], n1["coverage"], spec.buckets, COVERAGE_FLOOR)
    n1.update(label_idx=n1["raw_idx"], confidence=np.full(ROWS_PER_NIGHT, np.nan), bucket=b1, reason=r1,
              basis="raw", calibrator=None, scored_at=NIGHTS[0], run_id="run-score-1")

    # -- audit 1 + review-queue labels on night 1 ------------------------------------------
    day2 = datetime(2025, 3, 2, tzinfo=timezone.utc)
    a1_idx, a1_pi = _audit(rng, b1, AUDIT_PER_NIGHT)
    review_pool = np.setdiff1d(np.flatnonzero(b1 == "review"), a1_idx)
    rq_idx = np.sort(rng.choice(review_pool, size=min(REVIEW_LABELS, review_pool.size), replace=False))

    # -- recalibration on night-1 labels ----------------------------------------------------
    fit_idx = np.concatenate([a1_idx, rq_idx])
    fit_w = np.concatenate([1.0 / a1_pi, np.ones(rq_idx.size)])
    fit_x, fit_y = n1["logprobs"][fit_idx], n1["y"][fit_idx]
    window = (day2 + timedelta(hours=12), day2 + timedelta(hours=12))
    docs = {}
    for method in ("temperature", "platt", "isotonic"):
        cal = make_calibrator(method, list(LABELS)).fit(fit_x, fit_y, sample_weight=fit_w)
        rep = heldout_report(method, list(LABELS), fit_x, fit_y, fit_w, folds=5)  # cross-fitted, as the flow does
        metrics = {k: rep[k] for k in ("n", "accuracy", "ece", "nll", "brier")}
        docs[method] = (cal, build_document(cal, name, tv, window, int(fit_idx.size), metrics))
    v_temp, v_platt, v_iso = (docs[m][1]["version"] for m in ("temperature", "platt", "isotonic"))
    t_fit = day2 + timedelta(hours=13)
    champion = docs["platt"][0]

    # decisions: temperature re-applied to all night-1 rows, then Platt to the first 250
    decisions = []
    for version, method, when, count in ((v_temp, "temperature", t_fit + timedelta(minutes=1), ROWS_PER_NIGHT),
                                         (v_platt, "platt", t_fit + timedelta(minutes=6), 250)):
        probs = docs[method][0].predict_proba(n1["logprobs"][:count])
        conf = probs.max(axis=1)
        bucket, reason = assign_buckets(conf, n1["coverage"][:count], spec.buckets, COVERAGE_FLOOR)
        decisions.append({"row_id": n1["row_id"][:count], "calibrator_version": [version] * count,
                          "label": labels[probs.argmax(axis=1)], "confidence": conf, "bucket": bucket,
                          "reason": reason, "decided_at": [when] * count, "run_id": ["run-recal-1"] * count})

    # -- night 2: scored with the Platt champion ----------------------------------------------
    p2 = champion.predict_proba(n2["logprobs"])
    c2 = p2.max(axis=1)
    b2, r2 = assign_buckets(c2, n2["coverage"], spec.buckets, COVERAGE_FLOOR)
    n2.update(label_idx=p2.argmax(axis=1), confidence=c2, bucket=b2, reason=r2, basis="calibrated",
              calibrator=v_platt, scored_at=NIGHTS[1], run_id="run-score-2")
    day3 = datetime(2025, 3, 3, tzinfo=timezone.utc)
    a2_idx, a2_pi = _audit(rng, b2, AUDIT_PER_NIGHT)

    # -- the truth per prediction, as of now --------------------------------------------------
    rows = {k: np.concatenate([n1[k], n2[k]]) for k in ("row_id", "segment", "y", "coverage", "raw_confidence")}
    rows["logprobs"] = np.concatenate([n1["logprobs"], n2["logprobs"]])
    rows["raw_label"] = labels[np.concatenate([n1["raw_idx"], n2["raw_idx"]])]
    rows["night"] = np.array([NIGHTS[0].date()] * ROWS_PER_NIGHT + [NIGHTS[1].date()] * ROWS_PER_NIGHT, dtype=object)
    label = labels[np.concatenate([n1["label_idx"], n2["label_idx"]])]
    conf = np.concatenate([n1["confidence"], n2["confidence"]])
    bucket = np.concatenate([n1["bucket"], n2["bucket"]]).astype(object)
    reason = np.concatenate([n1["reason"], n2["reason"]]).astype(object)
    version = np.array([None] * ROWS_PER_NIGHT + [v_platt] * ROWS_PER_NIGHT, dtype=object)
    for d in decisions:  # later decisions overwrite earlier ones: the newest is current
        k = len(d["row_id"])
        label[:k], conf[:k], bucket[:k], reason[:k], version[:k] = (
            d["label"], d["confidence"], d["bucket"], d["reason"], d["calibrator_version"])
    rows.update(label=label, confidence=conf, bucket=bucket, bucket_reason=reason, calibrator_version=version)
    rows["decision_confidence"] = np.where(np.isnan(conf), rows["raw_confidence"], conf)

    # labels: audit 1 + review queue (03-02), audit 2 + one correction (03-03)
    true = labels[rows["y"]].astype(object)
    corrected = int(a1_idx[0])  # its first label was a typo, corrected a day later
    label_rows = {"task_name": [], "row_id": [], "label": [], "source": [], "inclusion_prob": [],
                  "imported_at": [], "superseded_at": [], "import_id": []}

    def add_label(i, value, source, pi, at, superseded=None, import_id="import"):
        for key, v in zip(label_rows, (name, rows["row_id"][i], value, source, pi, at, superseded, import_id)):
            label_rows[key].append(v)

    at1, at2 = day2 + timedelta(hours=12), day3 + timedelta(hours=12)
    for i, pi in zip(a1_idx, a1_pi):
        wrong = labels[1 - rows["y"][i]] if i == corrected else true[i]
        add_label(i, wrong, "audit", float(pi), at1, at2 if i == corrected else None, "audit-1")
    for i in rq_idx:
        add_label(i, true[i], "review_queue", None, at1, None, "review-1")
    for i, pi in zip(a2_idx, a2_pi):
        add_label(ROWS_PER_NIGHT + i, true[ROWS_PER_NIGHT + i], "audit", float(pi), at2, None, "audit-2")
    add_label(corrected, true[corrected], "audit", float(a1_pi[0]), at2, None, "correction-1")
    weight = np.full(2 * ROWS_PER_NIGHT, np.nan)
    is_audit = np.zeros(2 * ROWS_PER_NIGHT, dtype=bool)
    weight[a1_idx], weight[rq_idx], weight[ROWS_PER_NIGHT + a2_idx] = 1.0 / a1_pi, 1.0, 1.0 / a2_pi
    is_audit[a1_idx] = is_audit[ROWS_PER_NIGHT + a2_idx] = True
    labeled = ~np.isnan(weight)
    rows.update(true_label=np.where(labeled, true, None), label_weight=weight, is_audit_label=is_audit,
                is_labeled=labeled)

    # reliability snapshots of the Platt champion: on night-1 labels (03-02) and all labels (03-03)
    snapshots = []
    for snap_id, when, idx in (("snap-1", t_fit + timedelta(minutes=5), fit_idx),
                               ("snap-2", day3 + timedelta(hours=13), np.flatnonzero(labeled))):
        w = weight[idx]
        for scores, probs in (("raw", raw_probs(rows["logprobs"][idx])),
                              ("calibrated", champion.predict_proba(rows["logprobs"][idx]))):
            for seg in ("all", *SEGMENTS):
                keep = np.ones(idx.size, bool) if seg == "all" else rows["segment"][idx] == seg
                rep = reliability_report(probs[keep], rows["y"][idx][keep], w[keep], n_boot=20)
                snapshots.append({"snapshot_id": snap_id, "scores": scores, "segment": seg, "created_at": when,
                                  **{k: rep[k] for k in ("n", "accuracy", "ece", "ece_equal_mass", "ece_ci_low",
                                                         "ece_ci_high", "mce", "nll", "brier")},
                                  "bins": json.dumps([{k: b[k] for k in ("lower", "upper", "confidence",
                                                                           "accuracy", "count")}
                                                      for b in rep["bins"]])})

    events = [  # (version, event, actor, reason, metrics, minutes after the fit)
        (v_temp, "fitted", "run-recal-1", None, docs["temperature"][1]["heldout_metrics"], 0),
        (v_temp, "promoted", "run-recal-1", "first calibrator: no champion yet", None, 0.5),
        (v_platt, "fitted", "run-recal-1", None, docs["platt"][1]["heldout_metrics"], 4),
        (v_platt, "manual_promote", "alice", "Platt's intercept corrects the lean to positive; temperature cannot",
         {"champion_nll": docs["temperature"][1]["heldout_metrics"]["nll"],
          "challenger_nll": docs["platt"][1]["heldout_metrics"]["nll"]}, 5),
        (v_temp, "retired", "run-recal-1", f"replaced by {v_platt}", None, 5),
        (v_iso, "fitted", "run-recal-1", None, docs["isotonic"][1]["heldout_metrics"], 7),
        (v_iso, "rejected", "run-recal-1", "not better than the champion on held-out labels", None, 7.5),
    ]
    status = {v_temp: "retired", v_platt: "champion", v_iso: "candidate"}

    with writer(path) as con:
        con.execute("BEGIN TRANSACTION")
        for run_id, kind, at in (("run-score-1", "score", NIGHTS[0]), ("run-recal-1", "recalibrate", t_fit),
                                 ("run-score-2", "score", NIGHTS[1])):
            _insert(con, "runs", {"run_id": [run_id], "task_name": [name], "task_version": [tv], "kind": [kind],
                                  "status": ["completed"], "started_at": _ts([at]), "heartbeat_at": _ts([at]),
                                  "finished_at": _ts([at + timedelta(minutes=9)]), "labels": [list(LABELS)]})
        for night, part in enumerate((n1, n2)):
            n = ROWS_PER_NIGHT
            uri = f"batches/night-{night + 1:03d}.parquet"
            _insert(con, "batches", {"task_name": [name], "uri": [uri], "content_hash": [f"hash{night + 1}"],
                                     "task_version": [tv], "status": ["done"], "rows_in": [n], "rows_scored": [n],
                                     "rows_quarantined": [0], "run_id": [part["run_id"]],
                                     "finished_at": _ts([part["scored_at"] + timedelta(minutes=8)])})
            _insert(con, "predictions", {
                "task_version": [tv] * n, "row_id": part["row_id"], "task_name": [name] * n,
                "run_id": [part["run_id"]] * n, "batch_uri": [uri] * n, "batch_hash": [f"hash{night + 1}"] * n,
                "model": ["example/tiny-sentiment@0123abcd"] * n,
                "text": [f"review text {rid}" for rid in part["row_id"]],
                "label_logprobs": pa.array([list(zip(LABELS, lp)) for lp in part["logprobs"].tolist()],
                                           pa.map_(pa.string(), pa.float64())),
                "coverage": part["coverage"], "total_probability": part["total_probability"],
                "raw_label": labels[part["raw_idx"]], "raw_confidence": part["raw_confidence"],
                "truncated": [False] * n, "calibrator_version": [part["calibrator"]] * n,
                "label": labels[part["label_idx"]],
                "confidence": pa.array(part["confidence"], pa.float64(), from_pandas=True),
                "bucket": part["bucket"], "bucket_basis": [part["basis"]] * n,
                "bucket_reason": pa.array(part["reason"], pa.string()), "segment": part["segment"],
                "metadata": [json.dumps({"category": s}) for s in part["segment"]],
                "scored_at": _ts([part["scored_at"]] * n), "written_at": _ts([part["scored_at"]] * n),
                "night": [part["scored_at"].date()] * n})
        for d in decisions:  # as a recalibration writes them: appended, and current on their rows
            k = len(d["row_id"])
            write_decisions_by_key(con, pa.table({"task_version": [tv] * k, "row_id": d["row_id"],
                                           "calibrator_version": d["calibrator_version"], "label": d["label"],
                                           "confidence": d["confidence"], "bucket": d["bucket"],
                                           "calibrated_probs": pa.nulls(k, pa.map_(pa.string(), pa.float64())),
                                           "bucket_reason": pa.array(d["reason"], pa.string()),
                                           "run_id": d["run_id"], "decided_at": _ts(d["decided_at"])}))
        for sample_id, idx, pi, offset, at in (("audit-1", a1_idx, a1_pi, 0, day2 + timedelta(hours=9)),
                                               ("audit-2", a2_idx, a2_pi, ROWS_PER_NIGHT, day3 + timedelta(hours=9))):
            _insert(con, "audit_samples", {"sample_id": [sample_id] * idx.size, "task_name": [name] * idx.size,
                                           "task_version": [tv] * idx.size, "row_id": rows["row_id"][offset + idx],
                                           "stratum": rows["bucket"][offset + idx] if offset else n1["bucket"][idx],
                                           "inclusion_prob": pi, "created_at": _ts([at] * idx.size)})
        label_rows["imported_at"] = _ts(label_rows["imported_at"])
        label_rows["superseded_at"] = _ts(label_rows["superseded_at"])
        label_rows["inclusion_prob"] = pa.array(label_rows["inclusion_prob"], pa.float64())
        _insert(con, "labels", label_rows)
        for method, (cal, doc) in docs.items():
            _insert(con, "calibrators", {"version": [doc["version"]], "task_name": [name], "task_version": [tv],
                                         "method": [method], "status": [status[doc["version"]]],
                                         "document": [canonical_json(doc)], "n_labels": [doc["n_labels"]],
                                         "created_at": _ts([t_fit + timedelta(minutes={"temperature": 0, "platt": 4,
                                                                                       "isotonic": 7}[method])])})
        _insert(con, "calibrator_events", {
            "task_version": [tv] * len(events), "version": [e[0] for e in events], "event": [e[1] for e in events],
            "actor": [e[2] for e in events], "reason": [e[3] for e in events],
            "metrics": [None if e[4] is None else canonical_json(e[4]) for e in events],
            "event_at": _ts([t_fit + timedelta(minutes=e[5]) for e in events])})
        k = len(snapshots)
        _insert(con, "reliability_snapshots", {
            "snapshot_id": [s["snapshot_id"] for s in snapshots], "task_name": [name] * k, "task_version": [tv] * k,
            "calibrator_version": [v_platt] * k, "run_id": ["run-recal-1"] * k,
            **{c: [s[c] for s in snapshots] for c in ("scores", "segment", "n", "accuracy", "ece", "ece_equal_mass",
                                                     "ece_ci_low", "ece_ci_high", "mce", "nll", "brier", "bins")},
            "created_at": _ts([s["created_at"] for s in snapshots])})
        derived_tables.rebuild(con)  # written directly above, as no writer does
        con.execute("COMMIT")
    record_checks(spec, "run-score-2", health_checks(spec, "run-score-2"))  # the nightly flow's health checks

    return {
        "spec": spec,
        "task_name": name,
        "task_version": tv,
        "labels": LABELS,
        "nights": [n.date() for n in NIGHTS],
        "rows": rows,  # one entry per prediction, as of now (current decision, current label)
        "n_predictions": 2 * ROWS_PER_NIGHT,
        "n_current_labels": int(labeled.sum()),
        "n_audit_labels": int(is_audit.sum()),
        "champion": v_platt,
        "calibrators": {"temperature": v_temp, "platt": v_platt, "isotonic": v_iso},
        "status": status,
        "n_events": len(events),
        "n_decisions": sum(len(d["row_id"]) for d in decisions),
        "n_snapshots": len(snapshots),
        "corrected_row": rows["row_id"][corrected],
    }
