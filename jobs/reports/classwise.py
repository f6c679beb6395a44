"""Multiclass pictures: class-wise reliability (one curve per label), class-wise ECE, and the confusion matrix.

The top-label diagram of a task with K > 2 labels hides which label is
miscalibrated; here every label k gets its own reliability curve, of p_k (the
probability given to k) against whether the row is k, on calscore's 15
equal-width bins, and its ECE. Class-wise ECE is their mean over the labels
(Kull et al. 2019, "classwise-ECE"), weighted rows as everywhere in the report.

The calibrated probabilities are what judges each labeled row (as everywhere in
the report): recomputed at report time from its stored label log-probabilities
with the calibrator that decided it (its `calibrator_version` in
predictions_current) where that calibrator never saw the row, its recipe's stored
out-of-fold probabilities (`evidence_probs`) where it did; rows decided by a
`combined` calibrator (which also needs the sampled agreement) are left out and
counted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from calscore.calibration_store.document import load_document
from calscore.calibration_store.metrics import DEFAULT_N_BINS, raw_probs
from calscore.calibration_store.store import document
from calscore.jobs.reports import queries
from calscore.jobs.reports.plotting import save
from calscore.jobs.reports.reliability_diagram import reliability_numbers


def classwise_reliability(probs: Any, y: Any, labels: Sequence[str], weights: Any = None,
                          n_bins: int = DEFAULT_N_BINS) -> dict:
    """Per label k: reliability numbers of p_k against [y == k] (see `reliability_numbers`; "accuracy" is the
    label's weighted share of the rows); and class-wise ECE, the mean of the labels' ECEs."""
    p = np.asarray(probs, dtype=float)
    y = np.asarray(y)
    per_label = []
    for k, name in enumerate(labels):
        numbers = reliability_numbers(p[:, k], y == k, weights, n_bins)
        per_label.append({"label": name, **numbers})
    eces = [c["ece"] for c in per_label if c["ece"] is not None]
    return {"labels": per_label, "classwise_ece": float(np.mean(eces)) if eces else None, "n": int(p.shape[0])}


def confusion_counts(y_true: Any, y_pred: Any, n_labels: int) -> np.ndarray:
    """(K, K) row counts: [i, j] = rows whose true label is i and whose decision is j."""
    out = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(out, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return out


def label_probs(spec: Any, labeled: queries.ReportRows, scores: queries.LabeledScores) -> dict[str, Any]:
    """Raw and calibrated (n, K) probabilities, true and decided label indices and weights of the report's labeled
    rows that a calibrator decided (every labeled row, raw only, before any calibrator), in row order.

    {"raw", "calibrated" (None before any calibrator), "y", "decided", "weights", "versions", "left_out"}."""
    labels = list(spec.label_names)
    index = {name: i for i, name in enumerate(labels)}
    position = {r: i for i, r in enumerate(scores.row_id.tolist())}
    keep = np.array([r in position for r in labeled.row_id.tolist()], dtype=bool) & labeled.is_labeled
    rows = labeled.take(keep)
    at = np.array([position[r] for r in rows.row_id.tolist()], dtype=np.int64)
    logprobs, y = scores.logprobs[at], scores.y[at]
    with queries.report_connection(spec.warehouse.path) as con:
        decided_by = {r: (v, oof) for r, v, oof in con.execute(
            "select row_id, calibrator_version, evidence_probs from predictions_current where task_version = ?"
            " and is_labeled", [spec.task_version]).fetchall()}
        versions = [decided_by.get(r, (None, None))[0] for r in rows.row_id.tolist()]
        out_of_fold = [decided_by.get(r, (None, None))[1] for r in rows.row_id.tolist()]
        docs = {v: document(con, v, spec.task_version) for v in set(versions) - {None}}
    usable = {v for v, d in docs.items() if d["method"] != "combined"}
    calibrated_rows = np.array([v in usable for v in versions], dtype=bool)
    out: dict[str, Any] = {"left_out": int(sum(v is not None and v not in usable for v in versions))}
    if docs and not calibrated_rows.any():
        return {"skipped": f"the {out['left_out']} labeled rows were decided by a combined calibrator, whose "
                           "probabilities need the sampled agreement too"}
    if not docs:  # before any calibrator: the raw view of every labeled row
        sel = np.ones(len(versions), dtype=bool)
        out.update(raw=raw_probs(logprobs[sel]), calibrated=None, y=y[sel], weights=rows.label_weight[sel],
                   decided=np.array([index[v] for v in rows.raw_label[sel]], dtype=np.int64), versions=[])
        return out
    sel = calibrated_rows
    calibrated = np.empty((int(sel.sum()), len(labels)))
    chosen = [v for v, s in zip(versions, sel) if s]
    judged = [o for o, s in zip(out_of_fold, sel) if s]
    for v in set(chosen):
        mine = np.array([c == v and o is None for c, o in zip(chosen, judged)], dtype=bool)
        if mine.any():
            calibrated[mine] = load_document(docs[v], spec.task_version).predict_proba(logprobs[sel][mine])
    for i, probs in enumerate(judged):
        if probs is not None:
            calibrated[i] = probs
    out.update(raw=raw_probs(logprobs[sel]), calibrated=calibrated, y=y[sel], weights=rows.label_weight[sel],
               decided=np.array([index[v] for v in rows.label[sel]], dtype=np.int64), versions=sorted(set(chosen)))
    return out


def classwise_chart(inputs: dict[str, Any], labels: Sequence[str], path: Path, title: str,
                    n_bins: int = DEFAULT_N_BINS) -> dict:
    """One curve per label, raw (left) and calibrated (right); the legend carries each label's ECE and rows."""
    views = [("raw", inputs["raw"])] + ([("calibrated", inputs["calibrated"])] if inputs["calibrated"] is not None
                                        else [])
    fig = Figure(figsize=(4.6 * len(views), 4.4))
    axes = fig.subplots(1, len(views), squeeze=False).ravel()
    colors = colormaps["tab10"]
    out: dict[str, Any] = {"calibrated": None}
    for ax, (name, probs) in zip(axes, views):
        numbers = classwise_reliability(probs, inputs["y"], labels, inputs["weights"], n_bins)
        out[name] = numbers
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        for k, c in enumerate(numbers["labels"]):
            if not c["bins"]:
                continue
            ece = "n/a" if c["ece"] is None else f"{c['ece']:.3f}"
            ax.plot([b["confidence"] for b in c["bins"]], [b["accuracy"] for b in c["bins"]], marker="o",
                    markersize=3, linewidth=1.1, color=colors(k % 10), label=f"{c['label']}: ECE {ece}")
        cw = "n/a" if numbers["classwise_ece"] is None else f"{numbers['classwise_ece']:.3f}"
        ax.set_title(f"{name}: class-wise ECE {cw} (n={numbers['n']})", fontsize=9)
        ax.set(xlim=(0, 1), ylim=(-0.02, 1.02), xlabel="P(label)", ylabel="share of rows that are the label")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{title}\nclass-wise view: one curve per label, P(label) against the share of rows that are it"
                 + ("; weighted by 1 / inclusion probability" if inputs["weights"] is not None else ""),
                 fontsize=9.5)
    fig.tight_layout()
    return {"path": save(fig, path), **out, "left_out": inputs["left_out"]}


def confusion_chart(inputs: dict[str, Any], labels: Sequence[str], path: Path, title: str) -> dict:
    """The labeled rows' confusion matrix: true label (rows) against the decision (columns), each cell its count
    and its share of the true label's rows."""
    k = len(labels)
    counts = confusion_counts(inputs["y"], inputs["decided"], k)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(1.2 * k + 2.6, 1.0 * k + 1.9))
    ax = fig.subplots()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{counts[i, j]}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(k), labels, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    ax.set(xlabel="decided label", ylabel="true label")
    ax.set_title(f"{title}\nrows (share of the true label's rows)", fontsize=9)
    return {"path": save(fig, path), "labels": list(labels), "counts": counts.tolist()}
