"""Recalibration: every label used once -- a certification slice kept out, the rest for choosing and fitting.

    result = run_recalibration(spec)

1. The task's current labels (`labeled_rows`) are split once and for good: a stable `[calibration]
   certify_fraction` of the audit/random-sample labels never enters a fit (it certifies thresholds, with
   the guarantee of labels the champion never saw); every other label is evidence.
2. The evidence base (`evidence_base.current_evidence`): each evidence label's out-of-fold prediction by
   each recipe the task considers (and the champion's), read back when the labels did not change.
3. `promotion.decide` compares the challenger's recipe with the champion's on every evidence label, checks
   forward across nights, and fits the challenger on all of them; the decision, the evidence and (on a
   promotion) the new champion's re-application to recent rows are one transaction.
4. The coverage floor the champion applies (`coverage_floor.decide_floor`), from the audit/random-sample
   evidence labels by the champion recipe's out-of-fold predictions: a promoted champion's document carries it;
   a kept champion whose floor decision changes (the floor in effect, or the task file's floor it was made for)
   is re-issued with it (`champion_changes.reissue_with_floor`) and re-applied, so the buckets follow the labels
   without waiting for a promotion. Figures that move without changing the floor in effect change nothing: a
   re-application per new label would cost a night's rows for no bucket moved.
5. A reliability snapshot of the champion (or the raw scores) on every label, each judged by a map that
   never saw it (`snapshots`).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from calscore.calibration_store import promotion
from calscore.calibration_store.champion_changes import record_decision, reissue_with_floor
from calscore.calibration_store.document import FLOOR_KEY, recipe_of
from calscore.calibration_store.evidence import certification_slice, recipes_for
from calscore.calibration_store.signal_comparison import compare_signals, signal_comparison_markdown
from calscore.calibration_store.store import champion
from calscore.jobs.calibrators.coverage_floor import decide_floor, floor_sentence
from calscore.jobs.calibrators.evidence_base import (
    CurrentEvidence,
    current_evidence,
    headline_labels,
    load_judged_labels,
    write_evidence,
)
from calscore.jobs.calibrators.labeled_rows import LabeledRows, load_labeled_rows
from calscore.jobs.calibrators.reapply import continue_reapplications, queue_reapplication
from calscore.jobs.calibrators.snapshots import snapshot_rows, write_snapshots
from calscore.jobs.decisions import applied_floor
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import reader, writer
from calscore.jobs.warehouse.runs import finish_run, start_run
from calscore.jobs.warehouse.statements import statement


def _record_fit_rows(con, version: str, row_ids: np.ndarray) -> None:
    """Remember which rows the stored calibrator saw, so no figure ever judges it by itself on them."""
    con.register("fit_rows", pa.table({"version": [version] * len(row_ids), "row_id": row_ids.tolist()}))
    con.execute(statement("calibrator_fit_rows_insert"))
    con.unregister("fit_rows")


def recalibrate(spec: TaskSpec, run_id: str, diagram=None) -> dict:
    """Split the labels, bring the evidence base up to date, decide, store, re-apply and snapshot (module
    docstring). `diagram(raw_probs, calibrated_probs, y, weights, path)` draws the reliability PNG (optional)."""
    resumed = continue_reapplications(spec)  # a job a killed run left unfinished comes first
    rows = load_labeled_rows(spec)
    policy = spec.calibration
    certify = certification_slice(spec.name, rows.row_ids.tolist(), rows.certifies, policy.certify_fraction)
    evidence_rows = rows.take(~certify)
    counts = {"n_labels": len(rows), "n_certify": int(certify.sum()), "n_evidence": len(evidence_rows)}
    if len(evidence_rows) < policy.min_labels:
        return {"decision": f"skipped: {len(rows)} labeled rows, {len(evidence_rows)} of them outside the "
                            f"certification slice; the policy needs {policy.min_labels} to fit on",
                "promoted": False, **counts}
    with reader(spec.warehouse.path) as con:
        current = champion(con, spec.task_version)
    evidence = current_evidence(spec, evidence_rows,
                                recipes_for(policy.method, None if current is None else recipe_of(current)))
    decision = promotion.decide(
        evidence_rows.logprobs, evidence_rows.y, evidence_rows.imported_at, labels=spec.label_names,
        task_version=spec.task_version, evidence=evidence.base, method=policy.method, champion_document=current,
        weights=evidence_rows.weights, nights=evidence_rows.nights, min_labels=policy.min_labels,
        min_holdout=policy.min_holdout, agreement=evidence_rows.agreement,
    )
    recipe = decision.method if decision.promote else (None if current is None else recipe_of(current))
    floor = None if recipe is None else champion_floor(spec, evidence_rows, evidence, recipe)
    reissue = not decision.promote and _floor_changed(spec, current, floor)
    changed = decision.promote or reissue  # a new champion document, with its floor decision
    # the floor decision the champion applies after this run (None: the task file's floor, untested)
    applies = floor if changed else (None if current is None else current.get(FLOOR_KEY))
    with writer(spec.warehouse.path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            write_evidence(con, spec, evidence_rows, evidence, run_id, applied_floor(spec.coverage_floor, applies),
                           rewrite=[recipe] if changed else [])
            version = record_decision(con, decision, task_name=spec.name, actor=run_id, coverage_floor=floor)
            if version is not None:
                _record_fit_rows(con, version, evidence_rows.row_ids)
            new_champion = version if decision.promote else None
            if reissue:  # the champion kept, its floor decided again: a new document, re-applied like a promotion
                new_champion = reissue_with_floor(
                    con, current, floor, actor=run_id,
                    reason=f"coverage floor decided again: {floor_sentence(floor, spec.coverage_floor)}")
            queued = new_champion is not None and queue_reapplication(con, spec, new_champion, run_id)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    reapplied = continue_reapplications(spec) if queued else 0
    figures = decision.figures()
    summary = {"decision": decision_line(figures), "promoted": decision.promote, "version": version,
               "champion": new_champion or (current["version"] if current else None),
               "coverage_floor": floor_sentence(applies, spec.coverage_floor, has_champion=recipe is not None),
               "floor_changed": reissue, **counts,
               "n_compared": decision.n_holdout, "evaluation": decision.evaluation, "folds": decision.folds,
               "fold_seed": decision.fold_seed, "baseline": decision.baseline, "min_holdout": decision.min_holdout,
               "comparison": figures["comparison"], "forward": decision.forward, "method": decision.method,
               "refresh": decision.refresh, "candidates": decision.candidates,
               "baseline_metrics": figures["baseline_metrics"], "recomputed": list(evidence.fresh),
               "reapplied": reapplied, "reapplied_earlier_job": resumed, "diagram": None}
    if evidence_rows.agreement is not None:  # `combined`: each signal alone against both, cross-fitted
        summary["signals"] = compare_signals(spec.label_names, evidence_rows.logprobs, evidence_rows.agreement,
                                             evidence_rows.y, evidence_rows.weights, folds=policy.folds)
    if evidence.fresh or changed:  # else the labels and the champion are the last snapshot's: no new point
        summary.update(_snapshot(spec, run_id, diagram))
    return summary


def champion_floor(spec: TaskSpec, rows: LabeledRows, evidence: CurrentEvidence, recipe: str) -> dict | None:
    """The floor decision for a champion of `recipe`, from the audit/random-sample evidence labels by that recipe's
    out-of-fold predictions; None when the recipe has none (skipped), so nothing is decided."""
    probs = evidence.base.probs.get(recipe)
    if probs is None:
        return None
    sample = rows.certifies
    return decide_floor(spec.buckets, spec.coverage_floor, rows.coverage[sample], probs[sample], rows.y[sample],
                        rows.weights[sample], recipe=recipe)


def _floor_changed(spec: TaskSpec, current: dict | None, floor: dict | None) -> bool:
    """Whether a kept champion's floor decision changes what it applies: no decision yet, one made for another task
    file floor, or another floor in effect (figures that moved alone do not count: module docstring)."""
    if current is None or floor is None:
        return False
    held = current.get(FLOOR_KEY)
    return (held is None or held.get("task_floor") != floor["task_floor"]
            or applied_floor(spec.coverage_floor, held) != floor["in_effect"])


def _snapshot(spec: TaskSpec, run_id: str, diagram) -> dict:
    """The champion's (or the raw scores') reliability on the headline's labels, stored; its figures."""
    with reader(spec.warehouse.path) as con:
        doc = champion(con, spec.task_version)
        judged, used = headline_labels(load_judged_labels(con, spec, doc))
    if not len(judged):
        return {}
    version = None if doc is None else doc["version"]
    snaps = snapshot_rows(version, judged)
    out: dict = {"snapshot_labels": used, "snapshot_basis": judged.counts("basis")}
    if diagram is not None and judged.calibrated is not None:
        out["diagram"] = str(spec.warehouse.path.parent / "snapshots" / f"{snaps[0]['snapshot_id']}.png")
        diagram(judged.raw, judged.calibrated, judged.y, judged.weight, out["diagram"])
    with writer(spec.warehouse.path) as con:
        write_snapshots(con, spec, run_id, snaps, out.get("diagram"))
    for s in snaps:
        if s["segment"] == "all":
            out[s["scores"]] = {k: s[k] for k in ("n", "accuracy", "ece", "nll", "brier")}
    return out


def decision_line(figures: dict) -> str:
    """The decision's reason, then who won and each candidate's figures on the compared rows (what an import
    that starts a recalibration prints)."""
    if not figures.get("candidates"):
        return figures["reason"]
    baseline = "the raw scores" if figures["baseline"] == "raw" else f"champion `{figures['baseline'].split(':', 1)[1]}`"
    if figures["promote"]:
        won = f"winner: {figures['method']} (promoted over {baseline}, fitted on all {figures['n_train']} labels)"
    else:
        won = f"winner: {baseline} (challenger {figures['method']} rejected)"
    return f"{figures['reason']}. {won}; out-of-fold figures: {promotion.candidates_text(figures)}"


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
             f"- labeled rows: {result['n_labels']}: {result['n_evidence']} evidence (out-of-fold predictions, then the "
             f"fit), {result['n_certify']} in the certification slice (never fitted on)"]
    if result.get("version"):
        lines.append(f"- challenger `{result['version']}`; champion now `{result['champion']}`")
    if result.get("coverage_floor"):
        lines.append(f"- {result['coverage_floor']}")
    if result.get("floor_changed"):
        lines.append(f"- the champion's floor decision changed: champion `{result['champion']}` is its calibrator "
                     "with the new floor, re-applied to recent predictions")
    if result.get("comparison"):
        lines += ["", *comparison_markdown(result)]
    if result.get("forward"):
        lines += ["", f"forward check: {result['forward']['reason']}"]
    if result.get("candidates"):
        lines += ["", *candidates_markdown(result)]
    if "raw" in result:
        lines += ["", f"reliability snapshot of the champion on {result['raw']['n']} labels ({result['snapshot_labels']}), "
                  "each judged by a map that never saw it: " + ", ".join(
                      f"{n} {basis.replace('_', ' ')}" for basis, n in result["snapshot_basis"].items()), "",
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
    rows = [f"winner: **{winner}**; every recipe's out-of-fold predictions, {result['folds']} folds by a hash of task "
            f"and row id (fold seed {result['fold_seed']})", "",
            "| candidate | n | accuracy | ECE (15 bins) | NLL | Brier |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    named = [(f"{name} (challenger)" if name == result["method"] else name, f)
             for name, f in result["candidates"].items()]
    if result["baseline_metrics"] is not None:
        named.append((baseline + " (baseline)", result["baseline_metrics"]))
    for name, f in named:
        if "skipped" in f:
            rows.append(f"| {name} | skipped: {f['skipped']} | | | | |")
        else:
            rows.append(f"| {name} | {f['n']} | {f['accuracy']:.3f} | {f['ece']:.3f} | {f['nll']:.3f} | {f['brier']:.3f} |")
    return rows


def comparison_markdown(result: dict) -> list[str]:
    """The paired comparison behind the decision: how the rows were held out and both differences' bounds."""
    c = result["comparison"]
    against = "raw scores" if result["baseline"] == "raw" else f"champion `{result['baseline'].split(':', 1)[1]}`"
    how = (f"{result['folds']}-fold out-of-fold predictions of all {c['n']} labels (each row predicted by maps that "
           "never saw it)")
    rows = [("NLL gain (baseline - challenger)", c["nll_gain"], c["gain_level"], "lower bound > 0"),
            (f"{c['metrics'][1]} increase (challenger - baseline)", c["ece_increase"], c["level"], "lower bound <= 0")]
    head = (f"challenger vs {against} on the same rows: {how}; {c['method']}, {c['n_resamples']} resamples, "
            f"seed {c['seed']} (minimum {result['min_holdout']} compared rows)")
    return [head, "",
            "| difference | estimate | one-sided level | lower bound | upper bound | needed to promote |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
            *(f"| {name} | {d['estimate']:+.4f} | {100 * level:.4g}% | {d['low']:+.4f} | {d['high']:+.4f} | {need} |"
              for name, d, level, need in rows)]
