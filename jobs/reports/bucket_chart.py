"""Decision buckets: how many rows each bucket holds and how accurate its labeled rows are.

Accuracy is weighted by 1 / inclusion probability, with a 95% Wilson interval
on the effective sample size (see `intervals`): the audit sample over-draws
small buckets, and the weights undo that for the estimate.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from calscore.jobs.common.intervals import weighted_proportion, wilson_interval
from calscore.jobs.reports.plotting import NEUTRAL_COLOR, error_bars, save
from calscore.jobs.spec import Bucket


def bucket_stats(
    buckets: Sequence[Bucket],
    bucket: Any,
    correct: Any,
    labeled: Any,
    weights: Any = None,
    level: float = 0.95,
    rows: Mapping[str, int] | None = None,
) -> list[dict]:
    """Per bucket in the spec's order (then any other bucket names found): rows, share, labeled rows, correct
    labeled rows (a count, unweighted), weighted accuracy, effective n, Wilson interval.

    `rows` ({bucket: rows}) counts every row when the arrays hold only some of them (the labeled ones, as the
    report loads them); by default the arrays are every row."""
    bucket = np.asarray(bucket, dtype=object)
    correct = np.asarray(correct, dtype=bool)
    labeled = np.asarray(labeled, dtype=bool)
    w = np.ones(bucket.shape[0]) if weights is None else np.nan_to_num(np.asarray(weights, dtype=float))
    if rows is None:
        rows = {name: int((bucket == name).sum()) for name in set(bucket.tolist())}
    total = sum(rows.values())
    bounds = {b.name: b.min for b in buckets}
    names = list(bounds) + sorted((set(rows) | set(bucket.tolist())) - set(bounds))
    out = []
    for name in names:
        sel = (bucket == name) & labeled
        p, n_eff, _ = weighted_proportion(correct[sel], w[sel])
        low, high = wilson_interval(p, n_eff, level)
        out.append(
            {
                "bucket": name,
                "min": bounds.get(name),
                "rows": rows.get(name, 0),
                "share": rows.get(name, 0) / total if total else 0.0,
                "labeled": int(sel.sum()),
                "correct": int(correct[sel].sum()),
                "accuracy": p,
                "n_eff": n_eff,
                "low": low,
                "high": high,
            }
        )
    return out


def bucket_chart(stats: list[dict], path: Path, title: str | None = None) -> dict:
    """Rows per bucket (bars) and labeled accuracy with its interval (points); return {"path", "buckets"}."""
    names = [s["bucket"] for s in stats]
    x = np.arange(len(names))
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    bars = left.bar(x, [s["rows"] for s in stats], color=NEUTRAL_COLOR, alpha=0.8)
    for bar, s in zip(bars, stats):
        left.annotate(f"{s['rows']}\n({100 * s['share']:.0f}%)", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                      textcoords="offset points", xytext=(0, 2), ha="center", va="bottom", fontsize=8)
    left.set(xticks=x, xticklabels=names, ylabel="rows", title="rows per bucket")
    left.margins(y=0.2)
    for i, s in enumerate(stats):
        if s["accuracy"] is None:
            right.annotate("no labels", (i, 0.5), ha="center", fontsize=8, color="grey")
            continue
        right.errorbar(i, s["accuracy"], yerr=error_bars(s["accuracy"], s["low"], s["high"]), fmt="o",
                       color=NEUTRAL_COLOR, capsize=4)
        right.annotate(f"{s['accuracy']:.2f}\nn={s['labeled']}", (i, s["accuracy"]), textcoords="offset points",
                       xytext=(14, -8), fontsize=7)
        if s["min"] is not None and s["min"] > 0:
            right.hlines(s["min"], i - 0.3, i + 0.3, colors="grey", linestyles=":", linewidth=1)
    right.set(xticks=x, xticklabels=names, ylim=(0, 1.05), xlim=(-0.5, len(names) - 0.5),
              ylabel="accuracy on labeled rows", title="accuracy, 95% Wilson interval (dotted: bucket's lower bound)")
    right.title.set_fontsize(9)
    if title:
        fig.suptitle(title, fontsize=11)
    return {"path": save(fig, path), "buckets": stats}
