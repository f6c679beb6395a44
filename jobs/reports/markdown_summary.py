"""The report's short Markdown summary, attached to flow runs as a Prefect artifact."""
from __future__ import annotations

from datetime import date

from calscore.jobs.reports.report_data import DEFAULT_TARGET, load_summary_data, summary
from calscore.jobs.spec import TaskSpec


def report_markdown(spec: TaskSpec, night: date | str | None = None, target: float = DEFAULT_TARGET) -> str:
    """A short Markdown summary (for a Prefect artifact): volumes, buckets, calibration, threshold, champion."""
    data = load_summary_data(spec, night)
    s = summary(data, target)
    lines = [
        f"### calscore: {spec.name}, {data.scope}",
        "",
        f"- **{s['rows']}** predictions, **{s['labeled']}** labeled ({s['audit_labeled']} from audit or random samples, "
        f"{s['certifying']} of them certifying)",
    ]
    lines.append(f"- calibration, {s['heldout_sentence']}")
    lines.append(f"- {s['labels_note']}")
    lines.append(f"- threshold: {s['threshold_sentence']}")
    champion = s["champion"]
    lines.append(f"- champion calibrator: `{champion['version']}` ({champion['method']}, {champion['n_labels']} labels)"
                 if champion else "- champion calibrator: none yet")
    lines += ["", "| bucket | rows | share | labeled | accuracy (95% Wilson) |", "|---|---:|---:|---:|---|"]
    for b in s["buckets"]:
        acc = "-" if b["accuracy"] is None else f"{b['accuracy']:.3f} ({b['low']:.3f}-{b['high']:.3f})"
        lines.append(f"| {b['bucket']} | {b['rows']} | {b['share']:.1%} | {b['labeled']} | {acc} |")
    return "\n".join(lines) + "\n"
