"""The report's pictures, number by number, against independent computations: per-bin Wilson intervals against
scipy's binomtest (and the hand formula on Kish's effective n when weighted), the positive-class view against
scikit-learn's calibration_curve, the views' axes, the trend's time window, and the titles' task, calibrator and
date."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest
from scipy.stats import binomtest, norm
from sklearn.calibration import calibration_curve

from calscore.calibration_store.document import load_document
from calscore.calibration_store.store import document
from calscore.jobs.reports.reliability_diagram import (
    diagram_from_probs,
    figure_title,
    reliability_diagram,
    reliability_numbers,
    snapshot_diagram,
)
from calscore.jobs.reports.report_data import load_report_data, reliability_inputs
from calscore.jobs.reports.report_figures import trend_chart, trend_window
from calscore.jobs.reports.queries import load_rows, report_connection
from report_fixtures import fill_report_warehouse

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def hand_bins(conf, n_bins=15):
    """Bin index of each confidence for (lower, upper] equal-width bins, 0 in the first: a plain loop."""
    out = []
    for c in conf:
        b = 0
        while b < n_bins - 1 and c > (b + 1) / n_bins:
            b += 1
        out.append(b)
    return np.array(out)


def hand_wilson(p, n, z=norm.ppf(0.975)):
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    return fill_report_warehouse(tmp_path_factory.mktemp("pictures") / "calscore.duckdb")


def test_bin_wilson_intervals_unweighted_match_scipy():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.5, 1.0, 400)
    correct = rng.uniform(size=400) < conf - 0.1
    numbers = reliability_numbers(conf, correct)
    ids = hand_bins(conf)
    assert [b["count"] for b in numbers["bins"]] == [int((ids == b).sum()) for b in sorted(set(ids))]
    for b, idx in zip(numbers["bins"], sorted(set(ids))):
        k, n = int(correct[ids == idx].sum()), int((ids == idx).sum())
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert b["n_eff"] == pytest.approx(n)
        assert (b["low"], b["high"]) == pytest.approx((ci.low, ci.high), abs=1e-9)
        assert b["low"] <= b["accuracy"] <= b["high"]


def test_bin_wilson_intervals_weighted_use_kish_n():
    rng = np.random.default_rng(2)
    conf = rng.uniform(0.0, 1.0, 300)
    correct = rng.uniform(size=300) < conf
    w = rng.choice([1.0, 4.0, 10.0], size=300)
    numbers = reliability_numbers(conf, correct, w)
    ids = hand_bins(conf)
    for b, idx in zip(numbers["bins"], sorted(set(ids))):
        m = ids == idx
        p = np.sum(w[m] * correct[m]) / w[m].sum()
        n_eff = w[m].sum() ** 2 / np.sum(w[m] ** 2)
        assert b["accuracy"] == pytest.approx(p) and b["n_eff"] == pytest.approx(n_eff)
        assert (b["low"], b["high"]) == pytest.approx(hand_wilson(p, n_eff), abs=1e-12)


def champion_probs(filled, mask):
    """The champion's own probabilities on the fixture's rows in `mask` (it records no fit rows: it never saw
    them)."""
    with report_connection(filled["spec"].warehouse.path) as con:
        doc = document(con, filled["champion"])
    return load_document(doc, filled["task_version"]).predict_proba(filled["rows"]["logprobs"][mask])


def test_positive_class_view_matches_sklearn_calibration_curve(filled, tmp_path):
    rel = reliability_inputs(load_report_data(filled["spec"]).judged, "positive-class")
    # the same by hand: the headline's labels (the audit ones), P(positive) under the champion and the raw scores
    r = filled["rows"]
    m = r["is_audit_label"]
    np.testing.assert_allclose(np.sort(rel["calibrated_confidence"]), np.sort(champion_probs(filled, m)[:, 0]))
    raw = np.exp(r["logprobs"][m]) / np.exp(r["logprobs"][m]).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.sort(rel["raw_confidence"]), np.sort(raw[:, 0]))
    assert int(rel["calibrated_correct"].sum()) == int((r["true_label"][m] == "positive").sum())
    p, is_pos = rel["calibrated_confidence"], rel["calibrated_correct"]
    out = reliability_diagram(p, is_pos, None, None, tmp_path / "pos.png", view="positive-class",
                              positive="positive")
    prob_true, prob_pred = calibration_curve(is_pos, p, n_bins=15, strategy="uniform")
    np.testing.assert_allclose([b["accuracy"] for b in out["raw"]["bins"]], prob_true, atol=1e-12)
    np.testing.assert_allclose([b["confidence"] for b in out["raw"]["bins"]], prob_pred, atol=1e-12)
    assert out["x_range"] == (0.0, 1.0) and "positive-class view: P(positive)" in out["title"]
    assert out["path"].read_bytes()[:8] == PNG_MAGIC


def test_views_set_the_axes(tmp_path):
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.5, 1, 50)
    ok = rng.uniform(size=50) < conf
    binary = reliability_diagram(conf, ok, conf, ok, tmp_path / "b.png", n_labels=2)
    assert binary["x_range"] == (0.5, 1.0) and "top-label view" in binary["title"] and "0.5-1" in binary["title"]
    # every bin's row count is written once per curve, inside the frame (the bin straddling 0.5 included)
    assert sorted(n for _, _, n in binary["count_labels"]) == sorted(2 * [b["count"] for b in binary["raw"]["bins"]])
    assert all(0.5 < x < 1.0 for _, x, _ in binary["count_labels"])
    guessed = reliability_diagram(conf, ok, None, None, tmp_path / "g.png")
    assert guessed["x_range"] == (0.5, 1.0)
    probs = rng.dirichlet([1, 1, 1], size=80)
    y = rng.integers(0, 3, size=80)
    three = diagram_from_probs(probs, probs, y, None, tmp_path / "3.png", title="t")
    assert three["x_range"] == (0.3, 1.0)
    with pytest.raises(ValueError, match="view"):
        reliability_diagram(conf, ok, None, None, tmp_path / "x.png", view="sideways")


def test_trend_window_spans_the_snapshots(tmp_path):
    t0 = datetime(2025, 3, 2, 6, 0, tzinfo=timezone.utc)
    assert trend_window([t0]) == (t0 - timedelta(days=1), t0 + timedelta(days=1))
    t1 = t0 + timedelta(days=2)
    low, high = trend_window([t1, t0])
    assert low == t0 - timedelta(hours=2.4) and high == t1 + timedelta(hours=2.4)  # 5% of 48 h each side
    trend = [{"scores": s, "ece": e, "ece_ci_low": e - 0.01, "ece_ci_high": e + 0.01, "snapshot_id": f"s{i}",
              "created_at": t} for i, (t, s, e) in enumerate([(t0, "raw", 0.1), (t0, "calibrated", 0.03),
                                                               (t1, "raw", 0.12), (t1, "calibrated", 0.02)])]
    out = trend_chart(trend, tmp_path / "trend.png", title="x")
    assert out["x_range"] == (low, high) and out["path"].read_bytes()[:8] == PNG_MAGIC


def test_titles_name_task_calibrator_and_date(filled, tmp_path):
    assert figure_title("t", "what", "cal-1", date(2025, 3, 2)) == "t: what · calibrator cal-1 · 2025-03-02"
    assert "no calibrator (raw scores)" in figure_title("t", "what", None, date(2025, 3, 2))
    # a recalibration's snapshot PNG: titled with the champion the run left behind and today's date
    rng = np.random.default_rng(4)
    probs = rng.dirichlet([2, 2], size=40)
    y = rng.integers(0, 2, size=40)
    out = snapshot_diagram(filled["spec"])(probs, probs, y, np.ones(40), tmp_path / "snap.png")
    today = datetime.now(timezone.utc).date().isoformat()
    assert out["title"].startswith(f"report-demo: reliability on 40 held-out labels · calibrator {filled['champion']}"
                                   f" · {today}")


def test_segment_table_and_bins(filled, tmp_path):
    """Per segment: each bin's row count and Wilson interval by hand; the page's bucket table writes
    labeled/rows and correct/labeled in their own columns (never '1.00 (19/21)')."""
    from calscore.jobs.reports.html_report import write_report
    from calscore.jobs.reports.segments import segment_chart, segment_stats

    r = filled["rows"]
    with report_connection(filled["spec"].warehouse.path) as con:
        rows = load_rows(con, filled["spec"].task_version)
    stats = segment_stats(rows.segment, rows.confidence, rows.is_correct, rows.is_labeled, rows.bucket,
                          filled["spec"].buckets, rows.label_weight)
    out = segment_chart(stats, tmp_path / "seg.png", title="t", n_labels=2)
    assert out["x_range"] == (0.5, 1.0) and out["path"].read_bytes()[:8] == PNG_MAGIC
    correct = np.array([a == b for a, b in zip(r["label"], r["true_label"])])
    for s in out["segments"]:
        m = (r["segment"] == s["segment"]) & r["is_labeled"]
        ids = hand_bins(r["confidence"][m])
        w = r["label_weight"][m]
        for b, idx in zip(s["bins"], sorted(set(ids))):
            k = ids == idx
            p = np.sum(w[k] * correct[m][k]) / w[k].sum()
            assert b["count"] == int(k.sum())
            assert (b["low"], b["high"]) == pytest.approx(hand_wilson(p, w[k].sum() ** 2 / np.sum(w[k] ** 2)))
        for b in s["buckets"]:
            mb = m & (r["bucket"] == b["bucket"])
            assert b["labeled"] == int(mb.sum()) and b["correct"] == int(correct[mb].sum())
    page = write_report(filled["spec"], tmp_path / "out").read_text()
    assert "correct / labeled" in page and "labeled / rows" in page
    assert not re.search(r"\d\.\d\d \(\d+/\d+\)", page)
    s = stats[0]
    b = next(b for b in s["buckets"] if b["labeled"])
    assert (f'<td class="l">{s["segment"]}</td><td class="l">{b["bucket"]}</td><td>{b["rows"]}</td>'
            f'<td>{b["labeled"]}/{b["rows"]}</td><td>{b["correct"]}/{b["labeled"]}</td>') in page


def test_history_columns_against_the_recorded_metrics(filled, tmp_path):
    """The history shows held-out n, ECE, NLL, accuracy and the compared-with ECE / NLL in columns, each the
    number recorded in the event's metrics JSON (read here straight from the table), not a key=value dump."""
    import json

    from calscore.jobs.reports.html_report import history_figures, write_report

    with report_connection(filled["spec"].warehouse.path) as con:
        events = con.execute("select version, event, metrics from calibrator_events where metrics is not null"
                             " order by event_at").fetchall()
    assert events
    page = write_report(filled["spec"], tmp_path / "out").read_text()
    history = page[page.index('<table id="history">'):]
    history = history[:history.index("</table>")]
    for version, event, text in events:
        m = json.loads(text)
        f = history_figures(m)
        if "challenger_nll" in m:  # the fixture's promotion: the figures it compared
            assert f["nll"] == m["challenger_nll"] and f["baseline_nll"] == m["champion_nll"]
            assert f"<td>- / {m['champion_nll']:.3f}</td>" in history
        else:  # a fit: its held-out figures
            assert (f["n"], f["ece"], f["nll"], f["accuracy"]) == (m["n"], m["ece"], m["nll"], m["accuracy"])
            assert f"<td>{m['n']}</td><td>{m['ece']:.3f}</td><td>{m['nll']:.3f}</td><td>{m['accuracy']:.3f}</td>" \
                in history
    assert "=" not in re.sub(r"<[^>]+>", "", history)  # no key=value anywhere
    decision = {"n_holdout": 80, "challenger": {"n": 80, "ece": 0.02, "nll": 0.4, "accuracy": 0.9},
                "baseline_metrics": {"ece": 0.1, "nll": 0.5}, "comparison": {"nll_gain": {"estimate": 0.1}}}
    assert history_figures(decision) == {"n": 80, "ece": 0.02, "nll": 0.4, "accuracy": 0.9, "baseline_ece": 0.1,
                                         "baseline_nll": 0.5}


# -- multiclass: class-wise reliability, class-wise ECE, confusion matrix ------------------------


def hand_classwise_ece(probs, y, w, n_bins=15):
    """Mean over labels of sum_b W_b/W |share of label k in b - mean p_k in b|, (lower, upper] bins: a loop."""
    eces = []
    for k in range(probs.shape[1]):
        p, hit = probs[:, k], (y == k).astype(float)
        ids = hand_bins(p, n_bins)
        ece = 0.0
        for b in set(ids):
            m = ids == b
            ece += w[m].sum() / w.sum() * abs(np.sum(w[m] * hit[m]) / w[m].sum() - np.sum(w[m] * p[m]) / w[m].sum())
        eces.append(ece)
    return eces


def three_labels(n=600, seed=5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    logits = rng.normal(size=(n, 3)) + 1.8 * np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs, y, rng.choice([1.0, 2.0, 5.0], size=n)


def test_classwise_ece_and_confusion_against_hand_loop_and_sklearn(tmp_path):
    from sklearn.metrics import confusion_matrix

    from calscore.jobs.reports.classwise import classwise_chart, classwise_reliability, confusion_chart

    probs, y, w = three_labels()
    labels = ["a", "b", "c"]
    numbers = classwise_reliability(probs, y, labels, w)
    eces = hand_classwise_ece(probs, y, w)
    assert [c["ece"] for c in numbers["labels"]] == pytest.approx(eces, abs=1e-12)
    assert numbers["classwise_ece"] == pytest.approx(np.mean(eces), abs=1e-12)
    assert [c["accuracy"] for c in numbers["labels"]] == pytest.approx([np.average(y == k, weights=w)
                                                                        for k in range(3)])
    inputs = {"raw": probs, "calibrated": probs ** 2 / (probs ** 2).sum(axis=1, keepdims=True), "y": y,
              "weights": w, "decided": probs.argmax(axis=1)}
    chart = classwise_chart(inputs, labels, tmp_path / "cw.png", "t")
    assert chart["path"].read_bytes()[:8] == PNG_MAGIC
    assert chart["calibrated"]["classwise_ece"] == pytest.approx(np.mean(hand_classwise_ece(inputs["calibrated"],
                                                                                          y, w)), abs=1e-12)
    cm = confusion_chart(inputs, labels, tmp_path / "cm.png", "t")
    assert cm["counts"] == confusion_matrix(y, probs.argmax(axis=1), labels=[0, 1, 2]).tolist()
    assert cm["path"].read_bytes()[:8] == PNG_MAGIC


def test_the_diagrams_draw_what_the_headline_measures(filled, tmp_path):
    """Both reliability views draw the headline's labels: raw and the champion, with the headline's n and ECE."""
    from calscore.jobs.reports.report_figures import render_figures

    data = load_report_data(filled["spec"])
    figures = render_figures(data, tmp_path, "r")
    heldout = data.heldout
    for name in ("raw", "calibrated"):
        drawn = figures["reliability"][name]
        assert drawn["n"] == heldout[name]["n"] == int(filled["rows"]["is_audit_label"].sum())
        assert drawn["ece"] == pytest.approx(heldout[name]["ece"], abs=1e-12)
        assert figures["reliability_positive"][name]["n"] == heldout[name]["n"]


def test_multiclass_section_on_the_page(filled, tmp_path):
    from calscore.jobs.reports.classwise import classwise_chart, confusion_chart
    from calscore.jobs.reports.html_report import render_html
    from calscore.jobs.reports.report_data import summary
    from calscore.jobs.reports.report_figures import render_figures

    data = load_report_data(filled["spec"])
    figures = render_figures(data, tmp_path, "r")
    assert "classwise" not in figures  # a binary task: the positive-class view instead
    probs, y, w = three_labels()
    inputs = {"raw": probs, "calibrated": probs, "y": y, "weights": w, "decided": probs.argmax(axis=1)}
    figures["classwise"] = classwise_chart(inputs, ["a", "b", "c"], tmp_path / "cw.png", "t")
    figures["confusion"] = confusion_chart(inputs, ["a", "b", "c"], tmp_path / "cm.png", "t")
    page = render_html(data, figures, summary(data))
    assert '<img alt="class-wise reliability"' in page and '<img alt="confusion matrix"' in page
    counts = figures["confusion"]["counts"]
    assert f'<td class="l">a</td><td>{counts[0][0]}</td><td>{counts[0][1]}</td><td>{counts[0][2]}</td>' in page
    assert f"<td>{figures['classwise']['raw']['classwise_ece']:.3f}</td>" in page
