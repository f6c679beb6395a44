"""The report figures, drawn from a real warehouse file: each returns the numbers it drew, and those match
figures recomputed here, independently, from the rows the fixture inserted."""
from __future__ import annotations

import base64
import re
from collections import Counter

import numpy as np
import pytest
from scipy.stats import beta, norm

from calscore.calibration_store.document import load_document
from calscore.calibration_store.registry import make_calibrator
from calscore.calibration_store.store import document
from calscore.jobs.reports.bucket_chart import bucket_chart, bucket_stats
from calscore.jobs.reports.html_report import report_markdown, write_report
from calscore.jobs.reports.report_data import load_summary_data, summary
from calscore.jobs.reports.label_budget import label_budget, label_budget_chart
from calscore.jobs.reports.queries import load_rows, report_connection
from calscore.jobs.reports.report_data import load_report_data
from calscore.jobs.reports.reliability_diagram import reliability_diagram
from calscore.jobs.reports.segments import segment_chart, segment_stats
from calscore.jobs.reports.thresholds import (
    choose_threshold,
    threshold_chart,
    threshold_table,
    thresholds_text,
)
from calscore.jobs.warehouse.connection import writer
import derived_tables
from report_fixtures import fill_report_warehouse

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- independent reference figures (plain loops, not calibration_store) -------------------------


def ref_ece_mce(conf, correct, w, n_bins=15):
    """Equal-width (lower, upper] bins on [0, 1]; ECE = sum_b W_b/W |acc_b - conf_b|, MCE = max gap."""
    conf, correct, w = np.asarray(conf, float), np.asarray(correct, float), np.asarray(w, float)
    ece, mce, counts = 0.0, 0.0, []
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        m = (conf > lo) & (conf <= hi) if b else (conf <= hi)
        if not m.any():
            continue
        gap = abs(np.sum(w[m] * correct[m]) / w[m].sum() - np.sum(w[m] * conf[m]) / w[m].sum())
        ece += w[m].sum() / w.sum() * gap
        mce = max(mce, gap)
        counts.append(int(m.sum()))
    return ece, mce, counts


def champion_on_labels(filled, mask):
    """The champion's top-label confidence and correctness on the labels in `mask` (its own predictions, not the
    stored decisions, some of which an earlier calibrator made)."""
    r = filled["rows"]
    with report_connection(filled["spec"].warehouse.path) as con:
        doc = document(con, filled["champion"])
    probs = load_document(doc, filled["task_version"]).predict_proba(r["logprobs"][mask])
    return probs.max(axis=1), probs.argmax(axis=1) == r["y"][mask]


def ref_wilson(p, n, level=0.95):
    z = norm.ppf(1 - (1 - level) / 2)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def n_eff(w):
    return w.sum() ** 2 / (w**2).sum()


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    path = tmp_path_factory.mktemp("reports") / "calscore.duckdb"
    return fill_report_warehouse(path)


@pytest.fixture(scope="module")
def loaded(filled):
    spec = filled["spec"]
    with report_connection(spec.warehouse.path) as con:
        rows = load_rows(con, spec.task_version)
    return rows, load_report_data(spec).scores  # the label budget's: the headline's labels, raw scores as stored


def truth(filled):
    r = filled["rows"]
    correct = np.array([lab == t for lab, t in zip(r["label"], r["true_label"])])
    raw_correct = np.array([lab == t for lab, t in zip(r["raw_label"], r["true_label"])])
    return r, correct, raw_correct


# -- figures --------------------------------------------------------------------------------------


def test_rows_load_as_inserted(filled, loaded):
    rows, scores = loaded
    r = filled["rows"]
    assert len(rows) == filled["n_predictions"]
    assert list(rows.row_id) == sorted(r["row_id"])  # the fixture's ids are already in order
    assert Counter(rows.bucket) == Counter(r["bucket"])
    assert int(rows.is_labeled.sum()) == filled["n_current_labels"]
    assert int(rows.is_audit_label.sum()) == filled["n_audit_labels"]
    np.testing.assert_allclose(rows.decision_confidence, r["decision_confidence"])
    assert scores.logprobs.shape == (filled["n_audit_labels"], 2)  # convenience labels left out, as the headline's
    labeled = r["is_audit_label"]
    np.testing.assert_allclose(scores.logprobs, r["logprobs"][labeled])
    assert list(scores.y) == list(r["y"][labeled])


def test_reliability_diagram(filled, loaded, tmp_path):
    rows, _ = loaded
    r, correct, raw_correct = truth(filled)
    sel = rows.calibrated_labeled
    out = reliability_diagram(rows.raw_confidence[sel], rows.raw_correct[sel], rows.confidence[sel],
                              rows.is_correct[sel], tmp_path / "rel.png", weights=rows.label_weight[sel])
    assert out["path"].read_bytes()[:8] == PNG_MAGIC
    m = r["is_labeled"] & ~np.isnan(r["confidence"])
    w = r["label_weight"][m]
    for name, conf, ok in (("raw", r["raw_confidence"][m], raw_correct[m]), ("calibrated", r["confidence"][m],
                                                                              correct[m])):
        ece, mce, counts = ref_ece_mce(conf, ok, w)
        drawn = out[name]
        assert drawn["n"] == int(m.sum()) == filled["n_current_labels"]
        assert drawn["ece"] == pytest.approx(ece, abs=1e-12)
        assert drawn["mce"] == pytest.approx(mce, abs=1e-12)
        assert [b["count"] for b in drawn["bins"]] == counts
        assert drawn["accuracy"] == pytest.approx(np.average(ok, weights=w))
    assert out["calibrated"]["ece"] < out["raw"]["ece"]  # the fixture's model is miscalibrated; Platt helps


def test_reliability_diagram_raw_only(tmp_path):
    out = reliability_diagram([0.6, 0.9, 0.95], [True, False, True], None, None, tmp_path / "raw.png")
    assert out["calibrated"] is None and out["raw"]["n"] == 3 and out["path"].exists()


def test_bucket_chart(filled, loaded, tmp_path):
    rows, _ = loaded
    r, correct, _ = truth(filled)
    stats = bucket_stats(filled["spec"].buckets, rows.bucket, rows.is_correct, rows.is_labeled, rows.label_weight)
    out = bucket_chart(stats, tmp_path / "buckets.png")
    assert out["path"].read_bytes()[:8] == PNG_MAGIC
    assert [b["bucket"] for b in out["buckets"]] == ["auto", "review", "manual_check", "manual"]
    for b in out["buckets"]:
        members = r["bucket"] == b["bucket"]
        m = members & r["is_labeled"]
        w = r["label_weight"][m]
        assert b["rows"] == int(members.sum()) and b["labeled"] == int(m.sum())
        p = np.average(correct[m], weights=w)
        assert b["accuracy"] == pytest.approx(p)
        assert b["n_eff"] == pytest.approx(n_eff(w))
        assert (b["low"], b["high"]) == pytest.approx(ref_wilson(p, n_eff(w)))
        assert b["low"] <= b["accuracy"] <= b["high"]


def test_threshold_analysis(filled, loaded, tmp_path):
    rows, _ = loaded
    r, correct, _ = truth(filled)
    table = threshold_table(rows.decision_confidence, ~rows.off_format, rows.is_audit_label, rows.is_correct,
                            rows.label_weight)
    out = threshold_chart(table, tmp_path / "thresholds.png", target=0.85)
    assert out["path"].read_bytes()[:8] == PNG_MAGIC
    ok = r["bucket_reason"] != "off_format"
    expected_choice, scanning = None, False
    for row in reversed(out["thresholds"]):  # fixed-sequence test from the highest threshold down
        above = ok & (r["decision_confidence"] >= row["threshold"])
        audit = above & r["is_audit_label"]
        w = r["label_weight"][audit]
        p = np.average(correct[audit], weights=w)
        k, n = p * n_eff(w), n_eff(w)
        low = 0.0 if k == 0 else beta.ppf(0.05, k, n - k + 1)
        assert row["rows"] == int(above.sum()) and row["audit_labels"] == int(audit.sum())
        assert row["accuracy"] == pytest.approx(p) and row["lower_bound"] == pytest.approx(low)
        scanning = scanning or 0.05 ** (1 / n) >= 0.85  # starts where every label right would pass
        if scanning and low < 0.85:
            assert out["stopped"] is row
            break
        if scanning:
            expected_choice = row["threshold"]
    assert expected_choice is not None and out["chosen"]["threshold"] == expected_choice


def test_thresholds_text(filled, loaded):
    rows, _ = loaded
    spec = filled["spec"]
    text = thresholds_text(spec, 0.85)
    table = threshold_table(rows.decision_confidence, ~rows.off_format, rows.is_audit_label, rows.is_correct,
                            rows.label_weight)
    chosen = choose_threshold(table, 0.85)
    assert f"threshold for 85%: {chosen['threshold']:.2f};" in text
    assert f"automates {chosen['rows']} of {filled['n_predictions']} rows" in text
    assert "Guarantee: the chance that the chosen threshold's rows are less than 85% accurate is at most 5%" in text
    marked = [line for line in text.splitlines() if "<- " in line and "chosen" in line.split("<- ")[1]]
    assert len(marked) == 1 and marked[0].split()[:2] == [f"{chosen['threshold']:.2f}", str(chosen["rows"])]
    assert "0.50" in text and "0.95" in text  # the table
    assert "no threshold" in thresholds_text(spec, 0.999)
    night = thresholds_text(spec, 0.85, night="2025-03-02")
    assert "night 2025-03-02: 300 predictions" in night
    with pytest.raises(ValueError, match="target"):
        thresholds_text(spec, 90)


def test_label_budget(filled, loaded, tmp_path):
    _, scores = loaded
    result = label_budget(scores.logprobs, scores.y, filled["labels"], "platt", scores.weight, sizes=(25, 50, 100),
                          n_repeats=20, seed=3)
    out = label_budget_chart(result, tmp_path / "budget.png")
    assert out["path"].read_bytes()[:8] == PNG_MAGIC
    n = scores.y.shape[0]
    hold = out["holdout_index"]
    pool = np.setdiff1d(np.arange(n), hold)
    assert out["holdout_n"] == hold.size == round(0.3 * n) and out["pool_n"] == pool.size
    assert [p["label"] for p in out["points"]] == ["25", "50", "100", "all"]
    for p in out["points"][:-1]:
        assert p["n_fits"] >= 20 and p["ece_low"] <= p["ece_mean"] <= p["ece_high"]
    # "all": one fit on every non-held-out row, scored on the held-out rows only
    cal = make_calibrator("platt", list(filled["labels"])).fit(scores.logprobs[pool], scores.y[pool],
                                                               sample_weight=scores.weight[pool])
    probs = cal.predict_proba(scores.logprobs[hold])
    conf, ok = probs.max(axis=1), probs.argmax(axis=1) == scores.y[hold]
    ece, _, _ = ref_ece_mce(conf, ok, scores.weight[hold])
    last = out["points"][-1]
    assert last["n_fits"] == 1 and last["ece_mean"] == pytest.approx(ece, abs=1e-12)
    raw = np.exp(scores.logprobs[hold] - scores.logprobs[hold].max(axis=1, keepdims=True))
    raw /= raw.sum(axis=1, keepdims=True)
    raw_ece, _, _ = ref_ece_mce(raw.max(axis=1), raw.argmax(axis=1) == scores.y[hold], scores.weight[hold])
    assert out["raw"]["ece"] == pytest.approx(raw_ece, abs=1e-12)
    again = label_budget(scores.logprobs, scores.y, filled["labels"], "platt", scores.weight, sizes=(25, 50, 100),
                         n_repeats=20, seed=3)
    assert again["points"] == result["points"]  # seeded
    with pytest.raises(ValueError, match="at least 20"):
        label_budget(scores.logprobs, scores.y, filled["labels"], "platt", n_repeats=5)


def test_segments(filled, loaded, tmp_path):
    rows, _ = loaded
    r, correct, _ = truth(filled)
    stats = segment_stats(rows.segment, rows.confidence, rows.is_correct, rows.is_labeled, rows.bucket,
                          filled["spec"].buckets, rows.label_weight)
    out = segment_chart(stats, tmp_path / "segments.png")
    assert out["path"].read_bytes()[:8] == PNG_MAGIC
    assert {s["segment"] for s in out["segments"]} == set(r["segment"])
    for s in out["segments"]:
        members = r["segment"] == s["segment"]
        m = members & r["is_labeled"]
        w = r["label_weight"][m]
        ece, mce, counts = ref_ece_mce(r["confidence"][m], correct[m], w)
        assert s["rows"] == int(members.sum()) and s["labeled"] == int(m.sum())
        assert s["ece"] == pytest.approx(ece, abs=1e-12) and s["mce"] == pytest.approx(mce, abs=1e-12)
        assert s["accuracy"] == pytest.approx(np.average(correct[m], weights=w))
        assert s["gap"] == pytest.approx(np.average(r["confidence"][m], weights=w) - s["accuracy"])
        assert sum(b["rows"] for b in s["buckets"]) == s["rows"]
    # the fixture hides a positive lean in `neutral`: there, and only there, the model is overconfident
    neutral = next(s for s in out["segments"] if s["segment"] == "neutral")
    assert neutral["gap"] > 0 and neutral["gap"] == max(s["gap"] for s in out["segments"])


# -- the HTML report and its Markdown summary ------------------------------------------------------


def test_html_report(filled, tmp_path):
    spec = filled["spec"]
    r, correct, raw_correct = truth(filled)
    path = write_report(spec, tmp_path / "out")
    assert path.exists() and path.name == "report-report-demo-all.html"
    page = path.read_text(encoding="utf-8")
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    assert {alt for alt, _ in images} == {"reliability diagram", "reliability diagram, positive class",
                                           "bucket chart", "threshold analysis", "segments", "label budget",
                                           "calibration trend"}
    assert all(base64.b64decode(data)[:8] == PNG_MAGIC for _, data in images)
    assert 'src="http' not in page and "<script" not in page  # self-contained
    # the headline: the champion on the audit labels it was not fitted on (the fixture records no fit rows: all of
    # them; the review-queue labels are convenience labels, left out and counted)
    m = r["is_audit_label"]
    w = r["label_weight"][m]
    conf, ok = champion_on_labels(filled, m)
    assert f"on {int(m.sum())} labels, none judged by a map that saw it ({int(m.sum())} never seen by the calibrator): ECE {ref_ece_mce(r['raw_confidence'][m], raw_correct[m], w)[0]:.3f} [" in page
    assert f"→ {ref_ece_mce(conf, ok, w)[0]:.3f} [" in page
    assert f"{filled['n_predictions']} predictions" in page
    assert (f"{filled['n_current_labels']} labeled ({filled['n_audit_labels']} from audit or random samples, "
            f"{filled['n_audit_labels']} of them certifying)") in page
    # calibrator history: every version, every event, the promotion's reason and figures
    for version in filled["calibrators"].values():
        assert version in page
    for event in ("fitted", "promoted", "manual_promote", "retired", "rejected"):
        assert f'<td class="l wrap">{event} <span class="note">by ' in page
    assert "Platt&#x27;s intercept corrects the lean" in page and "challenger_nll=" not in page
    # bucket counts per night
    counts = Counter(zip(r["night"], r["bucket"]))
    for (night, bucket), n in counts.items():
        assert f"<td>{n} ({100 * n / 300:.0f}%)</td>" in page
    assert str(filled["nights"][0]) in page and str(filled["nights"][1]) in page
    for name in ("auto", "review", "manual_check", "manual"):
        assert f'<td class="l">{name}</td><td>' in page  # bucket table rows
    assert (tmp_path / "out" / "report-report-demo-all-reliability.png").exists()


def test_html_report_for_one_night(filled, tmp_path):
    spec = filled["spec"]
    path = write_report(spec, tmp_path, night="2025-03-02")
    page = path.read_text(encoding="utf-8")
    assert path.name == "report-report-demo-2025-03-02.html"
    assert "night 2025-03-02" in page and "300 predictions" in page
    with pytest.raises(ValueError, match="2025-03-01, 2025-03-02"):
        write_report(spec, tmp_path, night="2024-01-01")
    with pytest.raises(ValueError, match="a date like"):
        write_report(spec, tmp_path, night="yesterday")


def test_report_markdown(filled):
    spec = filled["spec"]
    r, correct, raw_correct = truth(filled)
    md = report_markdown(spec)
    m = r["is_audit_label"]
    w = r["label_weight"][m]
    assert md.startswith("### calscore: report-demo, all nights")
    assert f"**{filled['n_predictions']}** predictions, **{filled['n_current_labels']}** labeled" in md
    conf, ok = champion_on_labels(filled, m)
    assert f"on {int(m.sum())} labels, none judged by a map that saw it" in md
    assert f"ECE {ref_ece_mce(r['raw_confidence'][m], raw_correct[m], w)[0]:.3f} [" in md
    assert f"→ {ref_ece_mce(conf, ok, w)[0]:.3f} [" in md
    assert f"`{filled['champion']}` (platt" in md
    for bucket, n in Counter(r["bucket"]).items():
        assert f"| {bucket} | {n} |" in md


def test_report_before_any_label_or_calibrator(tmp_path):
    """A warehouse straight after the first night: the report says what it cannot draw yet, and why."""
    filled = fill_report_warehouse(tmp_path / "calscore.duckdb")
    with writer(tmp_path / "calscore.duckdb") as con:
        for table in ("labels", "decisions", "calibrators", "calibrator_events", "reliability_snapshots"):
            con.execute(f"delete from {table}")
        con.execute("delete from predictions where row_id like 'n2-%'")
        derived_tables.rebuild(con)  # deleted directly, as no writer does
    path = write_report(filled["spec"], tmp_path / "out")
    page = path.read_text(encoding="utf-8")
    assert "300 predictions" in page and "no champion calibrator yet" in page
    assert "not drawn (no labeled rows yet)" in page and "No calibrator fitted yet" in page
    assert "no reliability snapshots yet" in page
    assert page.count("data:image/png;base64") == 2  # buckets and thresholds need no labels
    md = report_markdown(filled["spec"])
    assert "champion calibrator: none yet" in md and "no threshold can be chosen" in md


def test_bucket_chart_with_a_perfect_bucket(tmp_path):
    """Accuracy exactly 1: the Wilson upper bound lands a rounding error below it (found by make demo)."""
    from calscore.jobs.common.intervals import wilson_interval
    from calscore.jobs.spec import DEFAULT_BUCKETS

    n = 25  # as in a demo run: 25 held-out labels in the auto bucket, all right
    stats = bucket_stats(DEFAULT_BUCKETS, ["auto"] * n, [True] * n, [True] * n, [1.0] * n)
    assert stats[0]["accuracy"] == 1.0
    out = bucket_chart(stats, tmp_path / "perfect.png")
    assert out["path"].read_bytes()[:8] == PNG_MAGIC
    assert wilson_interval(1.0, stats[0]["n_eff"])[1] == pytest.approx(1.0)


def test_html_report_shows_the_nightly_health_checks(filled, tmp_path):
    page = write_report(filled["spec"], tmp_path / "out").read_text()
    assert "<h2>Nightly health checks</h2>" in page
    with report_connection(filled["spec"].warehouse.path) as con:
        checks = con.execute("SELECT check_name, status FROM health_nightly").fetchall()
    rows = re.findall(r'<tr><td class="l">[^<]*</td><td class="l">([^<]*)</td><td class="l">([^<]*)</td>', page)
    assert checks and sorted(rows) == sorted(checks)  # every check of the night, with its status


def card_rows(page: str) -> dict[str, list[str]]:
    """The key-figures card of a page: {row heading: its cells' HTML}."""
    card = page[page.index('<table id="key-figures">'):]
    card = card[:card.index("</table>")]
    return {head: re.findall(r"<td[^>]*>(.*?)</td>", cells)
            for head, cells in re.findall(r"<tr><th>([^<]*)</th>(.*?)</tr>", card)}


def test_key_figures_card_shows_the_headline_numbers(filled, tmp_path):
    """The card at the top shows summary()["heldout"]'s numbers (raw -> calibrated, each with its 95% interval),
    the share the certified threshold automates and the labels by design, before any section."""
    spec = filled["spec"]
    s = summary(load_summary_data(spec), target=0.8)
    page = write_report(spec, tmp_path / "out", target=0.8).read_text(encoding="utf-8")
    assert page.index('<table id="key-figures">') < page.index("<h2>")
    rows = card_rows(page)
    h = s["heldout"]

    def shown(figures, name):
        low, high = figures[f"{name}_ci"]
        return f"{figures[name]:.3f} [{low:.3f}, {high:.3f}]"

    for name, head in (("ece", "ECE"), ("accuracy", "accuracy"), ("nll", "NLL")):
        assert rows[head] == [shown(h["raw"], name), "&rarr;", shown(h["calibrated"], name)], head
    t = s["threshold"]
    assert t is not None and rows["automated"] == [
        f"{100 * t['share']:.1f}% of the rows, at confidence &ge; {t['threshold']:.2f} (certified &ge; 80% accurate)"]
    assert h["designs"] == {"audit": filled["n_audit_labels"]}
    convenience = filled["n_current_labels"] - filled["n_audit_labels"]
    assert rows["labels used"] == [f"{h['n']}: {filled['n_audit_labels']} audit; {convenience} convenience left out"]
    # without a certified threshold, the card says so
    assert card_rows(write_report(spec, tmp_path / "strict", target=0.999).read_text())["automated"] == [
        "none: no threshold certified for 99.9%"]
