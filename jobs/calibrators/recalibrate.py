"""Recalibration work: labeled rows from the warehouse, challenger vs champion,
reliability snapshots, and append-only re-application of a new champion.

Honest by construction: the challenger is fit on all labels except the newest
slice (by arrival: import time, then scoring time, then a seeded random order
stratified by label; arrival.arrival_order); it is compared with the champion
(or the raw scores) on that slice when it holds at least [calibration] min_holdout
labels, else by cross-fitting over all labels, with a paired bootstrap either
way (promotion.decide). A promoted challenger's method is then refitted on all
labels and stored as the champion; the decision keeps the held-out figures.
The snapshot is computed only on rows the stored champion never saw: after a
promotion there are none (the refit saw every label), and without a champion
only the raw scores are snapshotted.
Labels are weighted by 1 / inclusion probability (audit samples), so figures
speak for all predictions, not just the labeled ones.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from calscore.calibration_store import load_document, metrics
from calscore.calibration_store.apply import logprob_matrix
from calscore.calibration_store.combined import calibrator_input
from calscore.calibration_store.signal_comparison import compare_signals, signal_comparison_markdown
from calscore.calibration_store import promotion
from calscore.calibration_store.champion_changes import record_decision
from calscore.calibration_store.store import champion
from calscore.jobs.decisions import AppliedCalibrator, agreement_signal, decide
from calscore.jobs.spec import TaskSpec
from calscore.jobs.common.clock import utcnow
from calscore.jobs.common.label_maps import label_map
from calscore.jobs.warehouse.connection import reader, writer
from calscore.jobs.warehouse.runs import finish_run, start_run
from calscore.jobs.warehouse.statements import statement


@dataclass(frozen=True)
class LabeledRows:
    """Current labels joined with this task_version's stored raw scores, in arrival order (import, then scoring)."""

    row_ids: np.ndarray
    logprobs: np.ndarray  # (n, K) label log-probabilities, task label order
    y: np.ndarray  # label index
    weights: np.ndarray  # 1 / inclusion probability (1 when unknown)
    imported_at: np.ndarray
    scored_at: np.ndarray
    segments: np.ndarray
    agreement: np.ndarray | None  # (n, K) smoothed agreement log-probabilities of a `combined` task; None otherwise

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> "LabeledRows":
        values = (getattr(self, f) for f in self.__dataclass_fields__)
        return LabeledRows(*(None if v is None else v[index] for v in values))


# Reading the labels' raw scores joins them to every prediction; DuckDB would keep what it scanned cached (up to
# 80% of RAM), so the read session is capped, as a report's is: what it returns is bounded by the labels.
READ_MEMORY_LIMIT = "256MB"


def load_labeled_rows(spec: TaskSpec) -> LabeledRows:
    with reader(spec.warehouse.path) as con:
        con.execute(f"SET memory_limit = '{READ_MEMORY_LIMIT}'")
        table = con.sql(
            statement("labels_with_raw_scores"), params={"task_version": spec.task_version, "task_name": spec.name}
        ).to_arrow_table()
    labels = spec.label_names
    # column by column (a recalibration at scale reads hundreds of thousands of labels)
    y = pc.index_in(table["label"], value_set=pa.array(labels))
    if y.null_count:
        raise ValueError(f"label {table['label'][y.is_null().index(True).as_py()]!r} is not one of {labels}")
    inclusion = pc.fill_null(table["inclusion_prob"], 0.0).to_numpy()
    return LabeledRows(
        row_ids=table["row_id"].to_numpy(zero_copy_only=False),
        logprobs=logprob_matrix(table["label_logprobs"], labels) if table.num_rows else np.zeros((0, len(labels))),
        y=y.to_numpy().astype(int),
        weights=1.0 / np.where(inclusion > 0, inclusion, 1.0),  # unknown inclusion probability: weight 1
        imported_at=table["imported_at"].to_numpy(),
        scored_at=table["scored_at"].to_numpy(),
        segments=table["segment"].to_numpy(zero_copy_only=False),
        agreement=agreement_signal(spec, table),
    )


def _snapshot_rows(spec: TaskSpec, run_id: str, version: str | None, rows: LabeledRows,
                   calibrated: np.ndarray | None) -> list[dict]:
    """Raw and calibrated reliability on the held-out rows, overall and per segment (raw only without a champion)."""
    snapshot_id = f"snap-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    raw = metrics.raw_probs(rows.logprobs)
    groups = [("all", np.ones(len(rows), dtype=bool))]
    if any(s is not None for s in rows.segments):
        groups += [(str(s), rows.segments == s) for s in sorted({s for s in rows.segments if s is not None})]
    out = []
    for segment, mask in groups:
        if mask.sum() == 0:
            continue
        for kind, probs in (("raw", raw), ("calibrated", calibrated)):
            if probs is None:
                continue
            report = metrics.reliability_report(probs[mask], rows.y[mask], weights=rows.weights[mask])
            out.append({"snapshot_id": snapshot_id, "scores": kind, "segment": segment, "version": version, **report})
    return out


# snapshot fields stored as they are (a reliability report carries more than the table keeps)
_SNAPSHOT_FIELDS = ("snapshot_id", "scores", "segment", "n", "accuracy", "ece", "ece_equal_mass", "ece_ci_low",
                    "ece_ci_high", "mce", "smece", "smece_ci_low", "smece_ci_high", "debiased_ece", "nll", "brier")


def _write_snapshots(con, spec: TaskSpec, run_id: str, snaps: list[dict], diagram_path: str | None) -> None:
    now = utcnow()
    for s in snaps:
        con.execute(
            statement("reliability_snapshots_insert"),
            {**{k: s[k] for k in _SNAPSHOT_FIELDS}, "task_name": spec.name, "task_version": spec.task_version,
             "calibrator_version": s["version"], "run_id": run_id, "bins": json.dumps(s["bins"]),
             "diagram_path": diagram_path if s["segment"] == "all" else None, "created_at": now},
        )


def _record_fit_rows(con, version: str, rows: LabeledRows, holdout_index: np.ndarray) -> None:
    """Remember which rows the stored calibrator saw, so reports never evaluate it on them."""
    fit = np.ones(len(rows), dtype=bool)
    fit[holdout_index] = False
    con.register("fit_rows", pa.table({"version": [version] * int(fit.sum()), "row_id": list(rows.row_ids[fit])}))
    con.execute(statement("calibrator_fit_rows_insert"))


# Rows re-decided per round: re-applying to a week of ten million rows a night never holds the week in memory.
REAPPLY_CHUNK_ROWS = 100_000


def write_decisions(con, decided: pa.Table) -> None:
    """Append re-applied decisions (one per prediction) and make them their rows' current decision, in the
    caller's transaction: `decisions` keeps every one, predictions carry the newest (migration 004)."""
    con.register("decided", decided)
    con.execute(statement("decisions_insert"))
    con.execute(statement("predictions_copy_reapplied"))
    con.unregister("decided")


def _decided_rows(spec: TaskSpec, calibrator, version: str, run_id: str, scores: pa.RecordBatch) -> pa.Table:
    decided = decide(spec, logprob_matrix(scores.column("label_logprobs"), spec.label_names),
                     scores.column("coverage").to_numpy(), AppliedCalibrator(version, calibrator),
                     agreement_signal(spec, scores))
    n = scores.num_rows
    return pa.table({
        "task_version": [spec.task_version] * n,
        "row_id": scores.column("row_id"),
        "calibrator_version": [version] * n,
        "label": pa.array(decided.label, pa.string()),
        "confidence": decided.confidence,
        "calibrated_probs": label_map(decided.probs, spec.label_names),
        "bucket": pa.array(decided.bucket, pa.string()),
        "bucket_reason": pa.array(decided.reason, pa.string()),
        "run_id": [run_id] * n,
        "decided_at": pa.array([utcnow()] * n, pa.timestamp("us", tz="UTC")),
    })


def reapply(con, spec: TaskSpec, calibrator, version: str, run_id: str) -> int:
    """Append decisions by the new champion for recent predictions (never overwrite), a chunk at a time."""
    if spec.calibration.reapply_days == 0:
        return 0
    since = utcnow() - timedelta(days=spec.calibration.reapply_days)
    # Read through a cursor (its own snapshot of the committed rows), write through `con` (the caller's
    # transaction): a result being read cannot share its connection with the writes.
    cursor = con.cursor()
    try:
        chunks = cursor.sql(
            statement("predictions_to_reapply"),
            params={"task_version": spec.task_version, "since": since, "calibrator_version": version},
        ).to_arrow_reader(REAPPLY_CHUNK_ROWS)
        n = 0
        for scores in chunks:
            write_decisions(con, _decided_rows(spec, calibrator, version, run_id, scores))
            n += scores.num_rows
    finally:
        cursor.close()
    return n


# Seeds the random order among labels that arrived together (recorded with every decision).
HOLDOUT_SEED = 0


def recalibrate(spec: TaskSpec, run_id: str, diagram=None) -> dict:
    """Fit a challenger on all but the newest labels, compare it with the champion (or
    the raw scores) on them, store and maybe promote it (refitted on all labels), snapshot, re-apply.

    `diagram(raw_probs, calibrated_probs, y, weights, path)` draws the reliability PNG (optional).
    """
    rows = load_labeled_rows(spec)
    policy = spec.calibration
    if len(rows) < policy.min_labels:
        return {"decision": f"skipped: {len(rows)} labeled rows, the policy needs {policy.min_labels}",
                "promoted": False, "n_labels": len(rows)}
    with reader(spec.warehouse.path) as con:
        current = champion(con, spec.task_version)
    decision = promotion.decide(
        rows.logprobs, rows.y, rows.imported_at, labels=spec.label_names, task_version=spec.task_version,
        method=policy.method, champion_document=current, weights=rows.weights,
        holdout_fraction=policy.holdout_fraction, min_labels=policy.min_labels, cross_fit_folds=policy.folds,
        min_holdout=policy.min_holdout,
        scored_times=rows.scored_at, holdout_seed=HOLDOUT_SEED, agreement=rows.agreement,
        **({"folds": policy.folds} if policy.method == "auto" else {}),
    )
    decision = promotion.refit_on_all_labels(decision, rows.logprobs, rows.y, rows.imported_at,
                                             labels=spec.label_names, weights=rows.weights,
                                             agreement=rows.agreement)
    # rows the stored calibrator never saw: none after a refit on all labels
    unseen = np.zeros(0, dtype=int) if decision.refit is not None else decision.holdout_index
    with writer(spec.warehouse.path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            version = record_decision(con, decision, task_name=spec.name, actor=run_id)
            if version is not None:
                _record_fit_rows(con, version, rows, unseen)
            if decision.promote:
                winner = decision.refit if decision.refit is not None else decision.challenger
                winner_version = version
                reapplied = reapply(con, spec, winner, winner_version, run_id)
            else:
                winner = load_document(current, spec.task_version) if current else None
                winner_version, reapplied = (current["version"] if current else None), 0
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    figures = decision.figures()
    summary = {"decision": decision_line(figures), "promoted": decision.promote, "version": version,
               "champion": winner_version, "n_labels": len(rows), "n_holdout": decision.n_holdout,
               "evaluation": decision.evaluation, "folds": decision.folds, "baseline": decision.baseline,
               "min_holdout": decision.min_holdout,
               "comparison": None if decision.comparison is None else decision.comparison.to_dict(),
               "method": decision.method, "candidates": decision.candidates,
               "baseline_metrics": figures["baseline_metrics"], "holdout_order": figures["holdout_order"],
               "refit_on_all_labels": decision.refit_info, "reapplied": reapplied, "diagram": None}
    if rows.agreement is not None:  # `combined`: each signal alone against both, cross-fitted on the same labels
        summary["signals"] = compare_signals(spec.label_names, rows.logprobs, rows.agreement, rows.y, rows.weights,
                                             folds=policy.folds)
    if decision.challenger_metrics is None or len(unseen) == 0:
        return summary  # nothing was compared, or the stored champion saw every label: no snapshot
    hold = rows.take(unseen)
    calibrated = (winner.predict_proba(calibrator_input(winner, hold.logprobs, hold.agreement))
                  if winner is not None else None)
    snaps = _snapshot_rows(spec, run_id, winner_version, hold, calibrated)
    overall = {s["scores"]: s for s in snaps if s["segment"] == "all"}
    if diagram is not None and calibrated is not None:
        summary["diagram"] = str(spec.warehouse.path.parent / "snapshots" / f"{snaps[0]['snapshot_id']}.png")
        diagram(metrics.raw_probs(hold.logprobs), calibrated, hold.y, hold.weights, summary["diagram"])
    with writer(spec.warehouse.path) as con:
        _write_snapshots(con, spec, run_id, snaps, summary["diagram"])
    for kind in overall:
        summary[kind] = {k: overall[kind][k] for k in ("n", "accuracy", "ece", "nll", "brier")}
    return summary


def decision_line(figures: dict) -> str:
    """The decision's reason, then who won and each candidate's figures on the compared rows (what an import
    that starts a recalibration prints)."""
    if not figures.get("candidates"):
        return figures["reason"]
    baseline = "the raw scores" if figures["baseline"] == "raw" else f"champion `{figures['baseline'].split(':', 1)[1]}`"
    if figures["promote"]:
        won = f"winner: {figures['method']} (promoted over {baseline})"
    else:
        won = f"winner: {baseline} (challenger {figures['method']} rejected)"
    refit = figures.get("refit_on_all_labels")
    refit = f"; refitted on all {refit['n']} labels" if refit else ""
    return f"{figures['reason']}. {won}{refit}; held-out figures: {promotion.candidates_text(figures)}"


def run_recalibration(spec: TaskSpec, wait_seconds: float = 0.0, diagram=None) -> dict:
    """A whole recalibration run without Prefect: take the lock, recalibrate, record the run, add the Markdown."""
    run_id = start_run(spec.warehouse.path, spec.name, spec.task_version, "recalibrate", wait_seconds=wait_seconds)
    try:
        result = recalibrate(spec, run_id, diagram=diagram)
    except BaseException as exc:
        finish_run(spec.warehouse.path, run_id, "failed", {"error": repr(exc)})
        raise
    finish_run(spec.warehouse.path, run_id, "completed", result)
    return {**result, "run_id": run_id, "markdown": recalibration_markdown(spec, run_id, result)}


def recalibration_markdown(spec: TaskSpec, run_id: str, result: dict) -> str:
    lines = [f"# calscore recalibration `{run_id}`", "", f"task **{spec.name}** (task_version `{spec.task_version}`)", "",
             f"- decision: {result['decision']}",
             f"- labeled rows: {result['n_labels']}"]
    if result.get("version"):
        lines.append(f"- challenger `{result['version']}`; champion now `{result['champion']}`")
    if result.get("comparison"):
        lines += ["", *comparison_markdown(result)]
    if result.get("candidates"):
        lines += ["", *candidates_markdown(result)]
    if result.get("refit_on_all_labels"):
        r = result["refit_on_all_labels"]
        lines += ["", f"the promoted method ({r['method']}) was then refitted on all {r['n']} labels and stored as the "
                  f"champion (the figures above are the challenger fitted on {r['evaluated_challenger_n_train']}); "
                  "no labeled row is unseen by it, so the next decision compares on newer labels or cross-fits"]
    if "raw" in result:
        lines += ["", f"newest held-out rows (never used to fit the stored champion): {result['raw']['n']}", "",
                  "| scores | accuracy | ECE (15 bins) | NLL | Brier |", "| --- | ---: | ---: | ---: | ---: |"]
        for kind in ("raw", "calibrated"):
            if kind not in result:
                lines.append(f"| {kind} | no champion | | | |")
                continue
            m = result[kind]
            lines.append(f"| {kind} | {m['accuracy']:.3f} | {m['ece']:.3f} | {m['nll']:.3f} | {m['brier']:.3f} |")
    if result.get("reapplied"):
        lines.append(f"\nre-applied the new champion to {result['reapplied']} recent predictions (decisions table)")
    if result.get("diagram"):
        lines.append(f"\nreliability diagram: {result['diagram']}")
    if result.get("signals"):
        lines += ["", "signals, cross-fitted on every label (each row predicted by maps fitted on the other folds):", "",
                  signal_comparison_markdown(result["signals"])]
    return "\n".join(lines) + "\n"


def candidates_markdown(result: dict) -> list[str]:
    """Each candidate method's and the baseline's figures on the compared rows, the winner named."""
    baseline = "raw scores" if result["baseline"] == "raw" else f"champion `{result['baseline'].split(':', 1)[1]}`"
    winner = result["method"] if result["promoted"] else baseline
    order = result["holdout_order"]
    rows = [f"winner: **{winner}**; held-out rows chosen by {', then '.join(order['by'])} (seed {order['seed']})", "",
            "| candidate | n | accuracy | ECE (15 bins) | NLL | Brier |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    named = [(f"{name} (challenger)" if name == result["method"] else name, f)
             for name, f in result["candidates"].items()]
    for name, f in [*named, (baseline + " (baseline)", result["baseline_metrics"])]:
        if "skipped" in f:
            rows.append(f"| {name} | skipped: {f['skipped']} | | | | |")
        else:
            rows.append(f"| {name} | {f['n']} | {f['accuracy']:.3f} | {f['ece']:.3f} | {f['nll']:.3f} | {f['brier']:.3f} |")
    return rows


def comparison_markdown(result: dict) -> list[str]:
    """The paired comparison behind the decision: how the rows were held out and both differences' bounds."""
    c = result["comparison"]
    against = "raw scores" if result["baseline"] == "raw" else f"champion `{result['baseline'].split(':', 1)[1]}`"
    how = (f"cross-fit, {result['folds']} folds over all {c['n']} labels (each row predicted by fits that never saw it)"
           if result["evaluation"] == promotion.CROSS_FIT else f"time split, the {c['n']} newest labels held out")
    pct = f"{c['level']:.0%}"
    rows = [("NLL gain (baseline - challenger)", c["nll_gain"], "lower bound > 0"),
            (f"{c['metrics'][1]} increase (challenger - baseline)", c["ece_increase"], "lower bound <= 0")]
    head = (f"challenger vs {against} on the same rows: {how}; paired bootstrap, {c['n_resamples']} resamples, "
            f"seed {c['seed']} (minimum {result['min_holdout']} compared rows)")
    return [head, "",
            f"| difference | estimate | lower {pct} bound | upper {pct} bound | needed to promote |",
            "| --- | ---: | ---: | ---: | --- |",
            *(f"| {name} | {d['estimate']:+.4f} | {d['low']:+.4f} | {d['high']:+.4f} | {need} |" for name, d, need in rows)]
