"""Segments: reliability and bucket accuracy per segment (e.g. the demo's category), so that a bias
hiding in one segment shows up even when the overall figures look fine."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from calscore.calibration_store.metrics import DEFAULT_N_BINS
from calscore.jobs.reports.bucket_chart import bucket_stats
from calscore.jobs.common.intervals import weighted_proportion, wilson_interval
from calscore.jobs.reports.plotting import error_bars, legend_outside, lower_limit, save
from calscore.jobs.reports.reliability_diagram import axis_start, reliability_numbers
from calscore.jobs.spec import Bucket


def segment_stats(
    segment: Any,
    confidence: Any,
    correct: Any,
    labeled: Any,
    bucket: Any,
    buckets: Sequence[Bucket],
    weights: Any = None,
    n_bins: int = DEFAULT_N_BINS,
    rows: Mapping[str, Mapping[str, int]] | None = None,
) -> list[dict]:
    """Per segment (largest first): rows, labeled rows, weighted accuracy with a Wilson interval, weighted mean
    confidence, their gap, ECE / MCE / bins on its labeled rows, and its bucket table (as `bucket_stats`).

    `confidence` may be NaN for rows without one; those are left out of the reliability figures.
    `rows` ({segment: {bucket: rows}}) counts every row when the arrays hold only the labeled ones.
    """
    seg = np.asarray(segment, dtype=object)
    conf = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    labeled = np.asarray(labeled, dtype=bool)
    bucket = np.asarray(bucket, dtype=object)
    w = np.ones(seg.shape[0]) if weights is None else np.nan_to_num(np.asarray(weights, dtype=float))
    if rows is None:
        rows = {s: {b: int(((seg == s) & (bucket == b)).sum()) for b in set(bucket[seg == s].tolist())}
                for s in set(seg.tolist())}
    names = sorted(rows, key=lambda s: (-sum(rows[s].values()), str(s)))
    out = []
    for name in names:
        members = seg == name
        sel = members & labeled & ~np.isnan(conf)
        rel = reliability_numbers(conf[sel], correct[sel], w[sel], n_bins)
        p, n_eff, _ = weighted_proportion(correct[sel], w[sel])
        low, high = wilson_interval(p, n_eff)
        out.append(
            {
                "segment": name,
                "rows": sum(rows[name].values()),
                "labeled": int(sel.sum()),
                "accuracy": p,
                "low": low,
                "high": high,
                "n_eff": n_eff,
                "mean_confidence": rel["mean_confidence"],
                "gap": None if p is None else rel["mean_confidence"] - p,  # > 0: overconfident
                "ece": rel["ece"],
                "mce": rel["mce"],
                "bins": rel["bins"],
                "buckets": bucket_stats(buckets, bucket[members], correct[members], labeled[members], w[members],
                                        rows=rows[name]),
            }
        )
    return out


def segment_chart(stats: list[dict], path: Path, title: str | None = None, n_labels: int | None = None) -> dict:
    """One small reliability panel per segment (bins with their 95% Wilson interval and row count), then
    accuracy vs mean confidence per segment; return {"path", "segments", "x_range"}."""
    start = axis_start("top-label", n_labels)
    panels = len(stats) + 1
    cols = min(3, panels)
    rows_ = -(-panels // cols)
    fig = Figure(figsize=(3.4 * cols, 3.1 * rows_ + 0.4), layout="constrained")
    axes = fig.subplots(rows_, cols, squeeze=False).ravel()
    colors = colormaps["tab10"]
    for i, s in enumerate(stats):
        ax = axes[i]
        ax.plot([start, 1], [start, 1], linestyle="--", color="grey", linewidth=1)
        bins = s["bins"]
        if bins:
            conf = np.array([b["confidence"] for b in bins])
            acc = np.array([b["accuracy"] for b in bins])
            ax.errorbar(conf, acc, yerr=error_bars(acc, [b["low"] for b in bins], [b["high"] for b in bins]),
                        fmt="o-", markersize=3, capsize=2, linewidth=1, color=colors(i % 10))
            for b in bins:  # at the bottom of the frame, wherever the y axis starts
                ax.annotate(str(b["count"]), (b["confidence"], 0), xycoords=("data", "axes fraction"),
                            textcoords="offset points", xytext=(0, 2), ha="center", va="bottom", fontsize=6,
                            color="dimgray", clip_on=True, zorder=4,
                            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.4, "alpha": 0.85})
        ece = "n/a" if s["ece"] is None else f"{s['ece']:.3f}"
        ax.set_title(f"{s['segment']}: n={s['labeled']}, ECE {ece}", fontsize=8.5)
        # down to the lowest interval: a segment's accuracy may be far below where its confidences start
        ax.set(xlim=(start, 1), ylim=(lower_limit(start, [b["low"] for b in bins]), 1.02))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if i % cols == 0:
            ax.set_ylabel("observed accuracy", fontsize=8)
        ax.set_xlabel("confidence (row counts at the bottom)", fontsize=7)
    right = axes[len(stats)]
    x = np.arange(len(stats))
    for i, s in enumerate(stats):
        if s["accuracy"] is None:
            continue
        right.errorbar(i - 0.1, s["accuracy"], yerr=error_bars(s["accuracy"], s["low"], s["high"]),
                       fmt="o", color=colors(i % 10), capsize=4, label="accuracy (95% Wilson)" if i == 0 else None)
        right.scatter(i + 0.1, s["mean_confidence"], marker="_", s=300, color="black",
                      label="mean confidence" if i == 0 else None)
    right.set(xticks=x, ylim=(0, 1.05))
    right.set_xticklabels([str(s["segment"]) for s in stats], fontsize=7, rotation=30, ha="right")
    right.set_title("accuracy vs mean confidence", fontsize=8.5)
    right.tick_params(labelsize=7)
    legend_outside(fig, right, ncols=2, fontsize=7)
    for ax in axes[panels:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9.5)
    return {"path": save(fig, path), "segments": stats, "x_range": (start, 1.0)}
