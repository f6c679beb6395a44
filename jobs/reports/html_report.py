"""The report of one task: a self-contained HTML file (figures as base64 PNG) and a Markdown summary.

`write_report(spec, out_dir, night=None)` is the body of `calscore report`;
`report_markdown(spec, night=None)` the short summary attached to flow runs.
Row-level figures (reliability, buckets, thresholds, segments) use the rows
scored on `night`, or all rows; the label budget uses every labeled row of the
task version; history, trend and nightly counts cover the task version up to
that night.
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from calscore.jobs.reports import queries
from calscore.jobs.reports.bucket_chart import bucket_chart, bucket_stats
from calscore.jobs.reports.label_budget import label_budget, label_budget_chart
from calscore.jobs.reports.plotting import CALIBRATED_COLOR, RAW_COLOR, error_bars, pct, plt, save
from calscore.jobs.reports.reliability_diagram import reliability_diagram, reliability_numbers
from calscore.jobs.reports.segments import segment_chart, segment_stats
from calscore.jobs.reports.thresholds import choose_threshold, describe_choice, threshold_chart, threshold_table
from calscore.jobs.spec import TaskSpec

DEFAULT_TARGET = 0.90
MIN_BUDGET_LABELS = 70


@dataclass
class ReportData:
    spec: TaskSpec
    night: date | None
    rows: queries.ReportRows
    scores: queries.LabeledScores
    nightly: list[dict]
    history: list[dict]
    trend: list[dict]
    champion_method: str | None


def load_report_data(spec: TaskSpec, night: date | str | None = None) -> ReportData:
    """Everything the report shows, read in one short read-only session."""
    night = queries.parse_night(night)
    tv = spec.task_version
    with queries.report_connection(spec.warehouse.path) as con:
        rows = queries.load_rows(con, tv, night)
        if night is not None and len(rows) == 0:
            known = ", ".join(str(n) for n in queries.nights(con, tv)) or "none yet"
            raise ValueError(f"task {spec.name} has no predictions scored on night {night} (nights: {known})")
        return ReportData(
            spec=spec,
            night=night,
            rows=rows,
            scores=queries.load_labeled_scores(con, tv, spec.label_names),
            nightly=queries.nightly_bucket_counts(con, tv, until=night),
            history=queries.calibrator_history(con, tv),
            trend=queries.calibration_trend(con, tv),
            champion_method=queries.champion_method(con, tv),
        )


# -- numbers (no drawing) ------------------------------------------------------------------


def reliability_inputs(rows: queries.ReportRows) -> dict[str, Any]:
    """Raw and calibrated confidence/correctness of the same labeled rows, with their weights.

    The rows are the labeled ones with a calibrated confidence; when no row has one yet (no calibrator was
    ever applied) only the raw figures exist, on every labeled row.
    """
    sel = rows.calibrated_labeled
    calibrated = bool(sel.any())
    if not calibrated:
        sel = rows.is_labeled
    return {
        "raw_confidence": rows.raw_confidence[sel],
        "raw_correct": rows.raw_correct[sel],
        "calibrated_confidence": rows.confidence[sel] if calibrated else None,
        "calibrated_correct": rows.is_correct[sel] if calibrated else None,
        "weights": rows.label_weight[sel],
        "segment": rows.segment[sel],
    }


def _thresholds(rows: queries.ReportRows) -> list[dict]:
    return threshold_table(rows.decision_confidence, ~rows.off_format, rows.is_audit_label, rows.is_correct,
                           rows.label_weight)


def _buckets(spec: TaskSpec, rows: queries.ReportRows) -> list[dict]:
    return bucket_stats(spec.buckets, rows.bucket, rows.is_correct, rows.is_labeled, rows.label_weight)


def _segments(spec: TaskSpec, rows: queries.ReportRows) -> list[dict]:
    if not rows.calibrated_labeled.any():  # no calibrator yet: the raw view of every labeled row
        return segment_stats(rows.segment, rows.raw_confidence, rows.raw_correct, rows.is_labeled, rows.bucket,
                             spec.buckets, rows.label_weight)
    return segment_stats(rows.segment, rows.confidence, rows.is_correct, rows.is_labeled, rows.bucket, spec.buckets,
                         rows.label_weight)


def budget_method(spec: TaskSpec, champion_method: str | None) -> str:
    """The task's calibration method; for `auto`, what the champion chose (temperature before any champion)."""
    if spec.calibration.method != "auto":
        return spec.calibration.method
    return champion_method or "temperature"


def summary(data: ReportData, target: float = DEFAULT_TARGET) -> dict[str, Any]:
    """The headline numbers of the report (what the Markdown summary prints)."""
    rows = data.rows
    rel = reliability_inputs(rows)
    w = rel["weights"]
    raw = reliability_numbers(rel["raw_confidence"], rel["raw_correct"], w)
    cal = (None if rel["calibrated_confidence"] is None
           else reliability_numbers(rel["calibrated_confidence"], rel["calibrated_correct"], w))
    table = _thresholds(rows)
    champion = next((h for h in reversed(data.history) if h["current_status"] == "champion"), None)
    return {
        "task": data.spec.name,
        "task_version": data.spec.task_version,
        "night": data.night,
        "rows": len(rows),
        "labeled": int(rows.is_labeled.sum()),
        "audit_labeled": int(rows.is_audit_label.sum()),
        "buckets": _buckets(data.spec, rows),
        "raw": {k: raw[k] for k in ("n", "accuracy", "ece", "mce")},
        "calibrated": None if cal is None else {k: cal[k] for k in ("n", "accuracy", "ece", "mce")},
        "target": target,
        "threshold": choose_threshold(table, target),
        "threshold_sentence": describe_choice(table, target, len(rows)),
        "champion": None if champion is None else {"version": champion["version"], "method": champion["method"],
                                                   "n_labels": champion["n_labels"]},
    }


# -- figures ---------------------------------------------------------------------------------


def trend_chart(trend: list[dict], path: Path, title: str | None = None) -> dict:
    """ECE of each reliability snapshot over time (segment 'all'), raw and calibrated, with its interval."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    drawn = {}
    for scores, color in (("raw", RAW_COLOR), ("calibrated", CALIBRATED_COLOR)):
        points = [t for t in trend if t["scores"] == scores and t["ece"] is not None]
        if not points:
            continue
        x = [t["created_at"] for t in points]
        y = np.array([t["ece"] for t in points])
        low = np.array([t["ece_ci_low"] if t["ece_ci_low"] is not None else t["ece"] for t in points])
        high = np.array([t["ece_ci_high"] if t["ece_ci_high"] is not None else t["ece"] for t in points])
        ax.errorbar(x, y, yerr=error_bars(y, low, high), fmt="o-", color=color,
                    capsize=3, label=scores)
        drawn[scores] = [{"snapshot_id": t["snapshot_id"], "created_at": t["created_at"], "ece": t["ece"]}
                         for t in points]
    ax.set(ylabel="ECE (15 bins)", ylim=(0, None), title=title or "Calibration trend (reliability snapshots)")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return {"path": save(fig, path), "series": drawn}


def render_figures(data: ReportData, out_dir: Path, stem: str, target: float = DEFAULT_TARGET) -> dict[str, Any]:
    """Draw every figure the data allows into out_dir; return each one's numbers (or why it was skipped)."""
    spec, rows = data.spec, data.rows
    scope = f"night {data.night}" if data.night else "all nights"
    out: dict[str, Any] = {}
    if rows.is_labeled.any():
        rel = reliability_inputs(rows)
        out["reliability"] = reliability_diagram(
            rel["raw_confidence"], rel["raw_correct"], rel["calibrated_confidence"], rel["calibrated_correct"],
            out_dir / f"{stem}-reliability.png", weights=rel["weights"],
            title=f"{spec.name}, {scope}: labeled rows")
    else:
        out["reliability"] = {"skipped": "no labeled rows yet"}
    if len(rows):
        out["buckets"] = bucket_chart(_buckets(spec, rows), out_dir / f"{stem}-buckets.png",
                                      title=f"{spec.name}, {scope}: decision buckets")
        out["thresholds"] = threshold_chart(_thresholds(rows), out_dir / f"{stem}-thresholds.png", target,
                                            title=f"{spec.name}, {scope}: threshold analysis")
    else:
        out["buckets"] = out["thresholds"] = {"skipped": "no predictions"}
    segments = set(rows.segment.tolist()) - {"(none)"}
    if segments and rows.is_labeled.any():
        out["segments"] = segment_chart(_segments(spec, rows), out_dir / f"{stem}-segments.png",
                                        title=f"{spec.name}, {scope}: segments")
    else:
        out["segments"] = {"skipped": "the batches carry no segment column" if not segments else "no labeled rows"}
    scores = data.scores
    method = budget_method(spec, data.champion_method)
    if scores.y.shape[0] >= MIN_BUDGET_LABELS:
        try:
            result = label_budget(scores.logprobs, scores.y, spec.label_names, method, scores.weight)
            out["label_budget"] = label_budget_chart(result, out_dir / f"{stem}-label-budget.png",
                                                     title=f"{spec.name}: label budget ({method})")
        except ValueError as exc:
            out["label_budget"] = {"skipped": str(exc)}
    else:
        out["label_budget"] = {"skipped": f"{scores.y.shape[0]} labeled rows; a curve needs {MIN_BUDGET_LABELS}"}
    if data.trend:
        out["trend"] = trend_chart(data.trend, out_dir / f"{stem}-trend.png")
    else:
        out["trend"] = {"skipped": "no reliability snapshots yet"}
    return out


# -- HTML --------------------------------------------------------------------------------------

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1150px;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
img { max-width: 100%; } .note { color: #666; font-size: 0.85em; } code { background: #f4f4f4; padding: 0 3px; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _e(value)


def _table(header: list[str], body: list[list[Any]], left: int = 1) -> str:
    head = "".join(f'<th class="l">{_e(h)}</th>' if i < left else f"<th>{_e(h)}</th>" for i, h in enumerate(header))
    rows = "".join(
        "<tr>" + "".join(f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in body
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def _img(figure: dict, alt: str) -> str:
    if "path" not in figure:
        return f'<p class="note">{_e(alt)}: not drawn ({_e(figure.get("skipped"))}).</p>'
    data = base64.b64encode(Path(figure["path"]).read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _metrics_text(metrics: Any, prefix: str = "", limit: int = 10) -> str:
    if not isinstance(metrics, dict):
        return "" if metrics is None else _e(metrics)
    parts: list[str] = []

    def walk(d: dict, pre: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{pre}{k}.")
            elif isinstance(v, bool) or v is None or isinstance(v, str):
                parts.append(f"{pre}{k}={v}")
            elif isinstance(v, (int, float)):
                parts.append(f"{pre}{k}={v:.4g}")

    walk(metrics, prefix)
    more = f" (+{len(parts) - limit} more)" if len(parts) > limit else ""
    return _e(", ".join(parts[:limit]) + more)


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return _e(value)


def _reliability_section(fig: dict) -> str:
    if "raw" not in fig:
        return _img(fig, "reliability diagram")
    body = []
    for name in ("raw", "calibrated"):
        n = fig.get(name)
        if n:
            body.append([name, n["n"], _num(n["accuracy"]), _num(n["mean_confidence"]), _num(n["ece"]),
                         _num(n["mce"])])
    return _img(fig, "reliability diagram") + _table(
        ["scores", "labeled rows", "accuracy", "mean confidence", "ECE", "MCE"], body) + (
        '<p class="note">Labeled rows with a calibrated confidence; figures weighted by 1 / inclusion '
        "probability (weight 1 for labels outside an audit sample). Re-applied calibrators may have been fitted "
        "on some of these rows; the reliability snapshots below are on held-out labels.</p>")


def _buckets_section(fig: dict) -> str:
    if "buckets" not in fig:
        return _img(fig, "bucket chart")
    body = [[_e(b["bucket"]), _num(b["min"], 2), b["rows"], pct(b["share"]), b["labeled"], _num(b["accuracy"]),
             f"{_num(b['low'])} - {_num(b['high'])}", _num(b["n_eff"], 1)] for b in fig["buckets"]]
    return _img(fig, "bucket chart") + _table(
        ["bucket", "min confidence", "rows", "share", "labeled", "accuracy", "95% Wilson", "effective n"], body)


def _thresholds_section(fig: dict, sentence: str) -> str:
    if "thresholds" not in fig:
        return _img(fig, "threshold analysis")
    chosen = fig["chosen"]
    body = [
        [_num(t["threshold"], 2), t["rows"], pct(t["share"]), t["audit_labels"], _num(t["n_eff"], 1),
         _num(t["accuracy"]), _num(t["lower_bound"]), "chosen" if t is chosen else ""]
        for t in fig["thresholds"]
        if round(t["threshold"] * 100) % 5 == 0 or t is chosen
    ]
    return (f"<p><b>{_e(sentence)}</b></p>" + _img(fig, "threshold analysis")
            + _table(["threshold", "rows at or above", "share", "audit labels", "effective n", "accuracy",
                      "95% lower bound", ""], body)
            + '<p class="note">Accuracy from audit-sample labels only, weighted by 1 / inclusion probability; '
              "one-sided Clopper-Pearson bound on the effective sample size. Off-format rows are never counted. "
              "<code>calscore thresholds --task T --target 0.90</code> prints every threshold.</p>")


def _segments_section(fig: dict) -> str:
    if "segments" not in fig:
        return _img(fig, "segments")
    body = [[_e(s["segment"]), s["rows"], s["labeled"], _num(s["accuracy"]), f"{_num(s['low'])} - {_num(s['high'])}",
             _num(s["mean_confidence"]), _num(s["gap"]), _num(s["ece"])] for s in fig["segments"]]
    names = [b["bucket"] for b in fig["segments"][0]["buckets"]] if fig["segments"] else []
    per_bucket = [[_e(s["segment"])] + [
        f"{_num(b['accuracy'], 2)} ({b['labeled']}/{b['rows']})" for b in s["buckets"]] for s in fig["segments"]]
    return (_img(fig, "segments")
            + _table(["segment", "rows", "labeled", "accuracy", "95% Wilson", "mean confidence",
                      "gap (conf - acc)", "ECE"], body)
            + "<p>Bucket accuracy per segment (labeled / rows):</p>" + _table(["segment", *names], per_bucket))


def _budget_section(fig: dict) -> str:
    if "points" not in fig:
        return _img(fig, "label budget")
    body = [[_e(p["label"]), p["n_fits"], f"{_num(p['ece_mean'])} ({_num(p['ece_low'])} - {_num(p['ece_high'])})",
             f"{_num(p['nll_mean'])} ({_num(p['nll_low'])} - {_num(p['nll_high'])})", _num(p["brier_mean"]),
             _num(p["accuracy_mean"])] for p in fig["points"]]
    body.append(["raw", "-", _num(fig["raw"]["ece"]), _num(fig["raw"]["nll"]), _num(fig["raw"]["brier"]),
                 _num(fig["raw"]["accuracy"])])
    return (_img(fig, "label budget")
            + _table(["labels", "fits", "ECE mean (95% range)", "NLL mean (95% range)", "Brier", "accuracy"], body)
            + f'<p class="note">Method {_e(fig["method"])}; each budget fitted on {fig["n_repeats"]} random '
              f"subsamples of the {fig['pool_n']}-row pool and scored on one held-out set of {fig['holdout_n']} "
              "labeled rows no fit touches; "
              "ranges are the 2.5-97.5 percentiles over the fits. All labeled rows of the task version.</p>")


def _history_section(history: list[dict]) -> str:
    if not history:
        return '<p class="note">No calibrator fitted yet: predictions use raw confidences.</p>'
    body = [[_when(h["event_at"] or h["created_at"]), f"<code>{_e(h['version'])}</code>", _e(h["method"]),
             _e(h["event"] or "-"), _e(h["actor"]), _e(h["reason"]), _metrics_text(h["metrics"]),
             _e(h["current_status"]), h["n_labels"]] for h in history]
    return _table(["when", "version", "method", "event", "actor", "reason", "metrics", "status now", "labels"],
                  body, left=8)


def _trend_section(fig: dict, trend: list[dict]) -> str:
    if not trend:
        return _img(fig, "calibration trend")
    body = [[_when(t["created_at"]), _e(t["snapshot_id"]), f"<code>{_e(t['calibrator_version'])}</code>",
             _e(t["scores"]), t["n"], _num(t["accuracy"]), _num(t["ece"]),
             f"{_num(t['ece_ci_low'])} - {_num(t['ece_ci_high'])}", _num(t["ece_change"]), _num(t["nll"]),
             _num(t["brier"])] for t in trend]
    return _img(fig, "calibration trend") + _table(
        ["created", "snapshot", "calibrator", "scores", "n", "accuracy", "ECE", "ECE interval", "ECE change", "NLL",
         "Brier"], body, left=4)


def _nightly_section(spec: TaskSpec, nightly: list[dict]) -> str:
    if not nightly:
        return '<p class="note">No predictions yet.</p>'
    names = [b.name for b in spec.buckets]
    names += sorted({r["bucket"] for r in nightly} - set(names))
    by_night: dict[Any, dict[str, dict]] = {}
    for r in nightly:
        by_night.setdefault(r["night"], {})[r["bucket"]] = r
    body = []
    for night, cells in by_night.items():
        total = sum(c["rows"] for c in cells.values())
        row = [_e(night), total]
        for name in names:
            c = cells.get(name)
            row.append("0" if c is None else f"{c['rows']} ({pct(c['share_of_night'], 0)})")
        row.append(sum(c["labeled_rows"] for c in cells.values()))
        row.append(sum(c["off_format_rows"] for c in cells.values()))
        body.append(row)
    return _table(["night (UTC)", "rows", *names, "labeled", "off-format"], body)


def render_html(data: ReportData, figures: dict, headline: dict) -> str:
    """The report page; every figure inline, so the file can be mailed or archived alone."""
    spec = data.spec
    scope = f"night {data.night}" if data.night else "all nights"
    champion = headline["champion"]
    champ = (f"champion calibrator <code>{_e(champion['version'])}</code> ({_e(champion['method'])}, "
             f"{champion['n_labels']} labels)" if champion else "no champion calibrator yet (raw confidences)")
    cal = headline["calibrated"]
    ece_line = (f"ECE {_num(headline['raw']['ece'])} raw &rarr; {_num(cal['ece'])} calibrated "
                f"on {cal['n']} labeled rows"
                if cal else f"raw ECE {_num(headline['raw']['ece'])} on {headline['raw']['n']} labeled rows")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        ("Reliability", _reliability_section(figures["reliability"])),
        ("Decision buckets", _buckets_section(figures["buckets"])),
        ("Threshold analysis", _thresholds_section(figures["thresholds"], headline["threshold_sentence"])),
        ("Segments", _segments_section(figures["segments"])),
        ("Label budget: how many labels do I need?", _budget_section(figures["label_budget"])),
        ("Calibrator history", _history_section(data.history)),
        ("Calibration trend", _trend_section(figures["trend"], data.trend)),
        ("Bucket counts per night", _nightly_section(spec, data.nightly)),
    ]
    body = "\n".join(f"<h2>{_e(title)}</h2>\n{content}" for title, content in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>calscore report: {_e(spec.name)} ({_e(scope)})</title>
<style>{_CSS}</style></head>
<body>
<h1>calscore report: {_e(spec.name)}, {_e(scope)}</h1>
<p>task_version <code>{_e(spec.task_version)}</code> &middot; {headline['rows']} predictions &middot;
{headline['labeled']} labeled ({headline['audit_labeled']} from audit samples) &middot; {champ}</p>
<p>{ece_line}. {_e(headline['threshold_sentence'].rstrip('.'))}.</p>
{body}
<p class="note">Generated {generated} from {_e(spec.warehouse.path)} (read-only).</p>
</body></html>
"""


def write_report(spec: TaskSpec, out_dir: Path, night: date | str | None = None,
                 target: float = DEFAULT_TARGET) -> Path:
    """Write report-<task>-<night|all>.html (and its PNGs beside it) into out_dir; return the HTML path."""
    data = load_report_data(spec, night)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"report-{spec.name}-{data.night or 'all'}"
    figures = render_figures(data, out_dir, stem, target)
    page = render_html(data, figures, summary(data, target))
    path = out_dir / f"{stem}.html"
    path.write_text(page, encoding="utf-8")
    return path


def report_markdown(spec: TaskSpec, night: date | str | None = None, target: float = DEFAULT_TARGET) -> str:
    """A short Markdown summary (for a Prefect artifact): volumes, buckets, calibration, threshold, champion."""
    data = load_report_data(spec, night)
    s = summary(data, target)
    scope = f"night {data.night}" if data.night else "all nights"
    lines = [
        f"### calscore: {spec.name}, {scope}",
        "",
        f"- **{s['rows']}** predictions, **{s['labeled']}** labeled ({s['audit_labeled']} from audit samples)",
    ]
    if s["calibrated"]:
        lines.append(f"- calibration on {s['calibrated']['n']} labeled rows: ECE **{s['calibrated']['ece']:.3f}** "
                     f"calibrated vs {s['raw']['ece']:.3f} raw (accuracy {s['calibrated']['accuracy']:.1%})")
    elif s["raw"]["n"]:
        lines.append(f"- no calibrated rows yet: raw ECE {s['raw']['ece']:.3f} on {s['raw']['n']} labeled rows")
    lines.append(f"- threshold: {s['threshold_sentence']}")
    champion = s["champion"]
    lines.append(f"- champion calibrator: `{champion['version']}` ({champion['method']}, {champion['n_labels']} labels)"
                 if champion else "- champion calibrator: none yet")
    lines += ["", "| bucket | rows | share | labeled | accuracy (95% Wilson) |", "|---|---:|---:|---:|---|"]
    for b in s["buckets"]:
        acc = "-" if b["accuracy"] is None else f"{b['accuracy']:.3f} ({b['low']:.3f}-{b['high']:.3f})"
        lines.append(f"| {b['bucket']} | {b['rows']} | {b['share']:.1%} | {b['labeled']} | {acc} |")
    return "\n".join(lines) + "\n"
