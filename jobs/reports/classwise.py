"""Multiclass pictures: class-wise reliability (one curve per label), class-wise ECE, and the confusion matrix.

The top-label diagram of a task with K > 2 labels hides which label is
miscalibrated; here every label k gets its own reliability curve, of p_k (the
probability given to k) against whether the row is k, on calscore's 15
equal-width bins, and its ECE. Class-wise ECE is their mean over the labels
(Kull et al. 2019, "classwise-ECE"), weighted rows as everywhere in the report.

The report draws the headline's labels: the champion's probabilities where it
never saw the row, its recipe's out-of-fold ones where it did
(`evidence_base.load_judged_labels`), whatever calibrator decided the rows.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from calscore.calibration_store.metrics import DEFAULT_N_BINS
from calscore.jobs.reports.plotting import legend_outside, save
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


def _ece(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def classwise_chart(inputs: dict[str, Any], labels: Sequence[str], path: Path, title: str,
                    n_bins: int = DEFAULT_N_BINS) -> dict:
    """One curve per label, raw (left) and calibrated (right); the legend, under both, carries each label's ECE."""
    views = [("raw", inputs["raw"])] + ([("calibrated", inputs["calibrated"])] if inputs["calibrated"] is not None
                                        else [])
    fig = Figure(figsize=(4.6 * len(views), 4.8), layout="constrained")
    axes = fig.subplots(1, len(views), squeeze=False).ravel()
    colors = colormaps["tab10"]
    out: dict[str, Any] = {"calibrated": None}
    for ax, (name, probs) in zip(axes, views):
        numbers = classwise_reliability(probs, inputs["y"], labels, inputs["weights"], n_bins)
        out[name] = numbers
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        for k, c in enumerate(numbers["labels"]):
            if c["bins"]:
                ax.plot([b["confidence"] for b in c["bins"]], [b["accuracy"] for b in c["bins"]], marker="o",
                        markersize=3, linewidth=1.1, color=colors(k % 10), label=c["label"])
        ax.set_title(f"{name}: class-wise ECE {_ece(numbers['classwise_ece'])} (n={numbers['n']})", fontsize=9)
        ax.set(xlim=(0, 1), ylim=(-0.02, 1.02), xlabel="P(label)", ylabel="share of rows that are the label")
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    ece_of = {view: {c["label"]: c["ece"] for c in out[view]["labels"]} for view, _ in views}
    texts = [f"{label}: ECE " + " → ".join(_ece(ece_of[view][label]) for view in ece_of) for label in names]
    legend_outside(fig, entries=(handles, texts), ncols=min(len(names), 3), fontsize=7,
                   title="ECE " + " → ".join(ece_of), title_fontsize=7)
    fig.suptitle(f"{title}\nclass-wise view: one curve per label, P(label) against the share of rows that are it"
                 + ("; weighted by 1 / inclusion probability" if inputs["weights"] is not None else ""),
                 fontsize=9.5)
    return {"path": save(fig, path), **out}


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
