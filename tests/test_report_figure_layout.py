"""Every figure the report draws keeps its data in view: no legend covers a plotted point (each legend's window
extent lies outside every axes of its figure and holds no point's display coordinates: the label-budget legend
covered its curve), and every axes holds every point it plots (markers, line vertices, error-bar ends, bars;
per-segment panels cut off accuracies below 0.5). Checked on each Figure as it is saved, for the whole report of
the fixture warehouse, for the class-wise and confusion pictures of a three-label sample and for a label budget of
several methods."""
from __future__ import annotations

import numpy as np
import pytest

from calscore.jobs.reports.report_data import load_report_data
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

from calscore.jobs.reports.classwise import classwise_chart, confusion_chart
from calscore.jobs.reports.html_report import write_report
from calscore.jobs.reports.label_budget import label_budget_chart, label_budgets
from calscore.jobs.reports.segments import segment_chart
from report_fixtures import fill_report_warehouse
from test_report_pictures import three_labels


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> list[Figure]:
    """Every Figure the report and the other charts save, captured at savefig."""
    tmp = tmp_path_factory.mktemp("layout")
    saved: list[Figure] = []
    savefig = Figure.savefig

    def capture(fig, *args, **kwargs):
        saved.append(fig)
        return savefig(fig, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Figure, "savefig", capture)
        filled = fill_report_warehouse(tmp / "calscore.duckdb")
        spec = filled["spec"]
        write_report(spec, tmp / "out")
        probs, y, w = three_labels()
        inputs = {"raw": probs, "calibrated": probs ** 2 / (probs ** 2).sum(axis=1, keepdims=True), "y": y,
                  "weights": w, "decided": probs.argmax(axis=1)}
        classwise_chart(inputs, ["a", "b", "c"], tmp / "cw.png", "t")
        confusion_chart(inputs, ["a", "b", "c"], tmp / "cm.png", "t")
        scores = load_report_data(spec).scores
        budget = label_budgets(scores.logprobs, scores.y, spec.label_names, ("platt", "temperature", "isotonic"),
                               scores.weight, sizes=(25, 50, 100), n_repeats=20)
        label_budget_chart(budget, tmp / "budget.png", highlight="platt")
    assert len(saved) >= 10
    return saved


def plotted_points(ax) -> np.ndarray:
    """(n, 2) data coordinates of what `ax` plots in data coordinates: line vertices (markers, curve corners,
    error-bar caps), error-bar segment ends, scatter offsets and bar corners. Lines placed in axes coordinates
    (axhline, axvline) and filled areas are left out."""
    parts = [line.get_xydata() for line in ax.lines if line.get_transform() == ax.transData]
    for coll in ax.collections:
        if isinstance(coll, LineCollection):
            parts += [np.asarray(s) for s in coll.get_segments() if len(s)]
        elif isinstance(coll, PathCollection):
            parts.append(np.asarray(coll.get_offsets()))
    for patch in ax.patches:
        if patch.get_transform() == ax.transData and hasattr(patch, "get_bbox"):
            parts.append(np.asarray(patch.get_bbox().get_points()))
    points = np.vstack([np.asarray(p, dtype=float).reshape(-1, 2) for p in parts]) if parts else np.empty((0, 2))
    return points[np.isfinite(points).all(axis=1)]


def figure_name(fig: Figure) -> str:
    return (fig._suptitle.get_text() if fig._suptitle else "") or fig.axes[0].get_title()


def test_every_axes_holds_every_point_it_plots(figures):
    outside = []
    for fig in figures:
        for ax in fig.axes:
            points = plotted_points(ax)
            (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
            tol_x, tol_y = 1e-9 * (x1 - x0), 1e-9 * (y1 - y0)
            out = ((points[:, 0] < x0 - tol_x) | (points[:, 0] > x1 + tol_x)
                   | (points[:, 1] < y0 - tol_y) | (points[:, 1] > y1 + tol_y))
            if out.any():
                outside.append((figure_name(fig), ax.get_title(), points[out][:3].tolist(), (x0, x1, y0, y1)))
    assert not outside, outside


def legends(fig: Figure) -> list:
    return list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]


def test_no_legend_covers_a_plotted_point(figures):
    covered, checked = [], 0
    for fig in figures:
        fig.draw_without_rendering()  # lays the figure out as saved
        for legend in legends(fig):
            checked += 1
            box = legend.get_window_extent()
            for ax in (ax for ax in fig.axes if ax.get_visible()):  # a grid's unused cells are hidden
                shown = ax.transData.transform(plotted_points(ax))
                inside = (shown[:, 0] >= box.x0) & (shown[:, 0] <= box.x1) & (shown[:, 1] >= box.y0) & \
                         (shown[:, 1] <= box.y1)
                if inside.any() or box.overlaps(ax.get_window_extent()):
                    covered.append((figure_name(fig), ax.get_title(), int(inside.sum())))
    assert checked >= 6 and not covered, covered


def test_a_segment_panel_shows_accuracies_below_its_confidence_axis(tmp_path):
    """A segment whose labeled rows are mostly wrong: its bins' accuracies (and their intervals) lie below 0.5,
    where the confidence axis starts; the panel's y axis reaches down to them."""
    bins = [{"confidence": c, "accuracy": a, "low": max(a - 0.15, 0.0), "high": a + 0.15, "count": 10}
            for c, a in ((0.55, 0.1), (0.75, 0.3), (0.95, 0.45))]
    stats = [{"segment": "hard", "labeled": 30, "ece": 0.5, "bins": bins, "accuracy": 0.28, "low": 0.15,
              "high": 0.45, "mean_confidence": 0.75}]
    saved = []
    with pytest.MonkeyPatch.context() as patch:
        savefig = Figure.savefig
        patch.setattr(Figure, "savefig", lambda fig, *a, **k: (saved.append(fig), savefig(fig, *a, **k))[1])
        segment_chart(stats, tmp_path / "seg.png", n_labels=2)
    panel = saved[0].axes[0]
    assert panel.get_ylim()[0] <= 0.0 and panel.get_xlim() == (0.5, 1.0)
