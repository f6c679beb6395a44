"""The report of one task as a self-contained HTML page (figures inline as base64 PNG).

`write_report(spec, out_dir, night=None)` is the body of `calscore report`. The
page is rendered from the Jinja2 templates in `templates/` with autoescaping;
this module only supplies their data and the filters that format numbers.
`report_markdown` (the short summary attached to flow runs) lives in
`markdown_summary` and is importable from here too, where flows import it.
"""
from __future__ import annotations

import base64
import html
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from calscore.jobs.reports.markdown_summary import report_markdown  # noqa: F401  (flows import it from here)
from calscore.jobs.reports.plotting import pct
from calscore.jobs.reports.report_data import DEFAULT_TARGET, ReportData, load_report_data, summary
from calscore.jobs.reports.report_figures import render_figures
from calscore.jobs.reports.thresholds import percent
from calscore.jobs.spec import TaskSpec


def _finalize(value: Any) -> Markup:
    """Every {{ value }}: None shows as nothing; text is escaped the way html.escape does, so quotes come out
    as &#x27; as in every report written so far (markupsafe would write &#39;). Markup built by the templates'
    own macros passes through untouched."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value)))


def _num(value: Any, digits: int = 3) -> str:
    """A float to `digits` places; "-" for a missing or NaN figure; anything else as it is."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _when(value: Any) -> Any:
    """A timestamp in UTC to the minute, as the warehouse's nights are UTC nights."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return value


def history_figures(metrics: Any) -> dict[str, Any]:
    """The few figures of a calibrator event that matter, whatever shape its metrics JSON has: held-out n, ECE,
    NLL and accuracy of the calibrator, and ECE / NLL of what it was compared with (None where not recorded).

    A promotion decision records {"n_holdout", "challenger": {...}, "baseline_metrics": {...}}; a fit records its
    held-out figures {"n", "ece", "nll", ...}; an older decision {"challenger_nll", "champion_nll"}."""
    out: dict[str, Any] = dict.fromkeys(("n", "ece", "nll", "accuracy", "baseline_ece", "baseline_nll"))
    if not isinstance(metrics, dict):
        return out
    mine = metrics.get("challenger") if isinstance(metrics.get("challenger"), dict) else metrics
    base = metrics.get("baseline_metrics") if isinstance(metrics.get("baseline_metrics"), dict) else {}
    out.update(n=metrics.get("n_holdout") or mine.get("n"), ece=mine.get("ece"),
               nll=mine.get("nll", metrics.get("challenger_nll")), accuracy=mine.get("accuracy"),
               baseline_ece=base.get("ece"), baseline_nll=base.get("nll", metrics.get("champion_nll")))
    return out


def history_rows(history: list[dict]) -> list[dict]:
    """One row per calibrator event for the history table: its columns, metrics reduced to `history_figures`."""
    return [{**h, "when": h.get("event_at") or h.get("created_at"), **history_figures(h.get("metrics"))}
            for h in history]


def _png_base64(path: Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


_TEMPLATES = Environment(
    loader=PackageLoader("calscore.jobs.reports", "templates"),
    autoescape=True,
    finalize=_finalize,
    undefined=StrictUndefined,  # a misspelt field fails the report instead of printing nothing
    trim_blocks=True,
    lstrip_blocks=True,
)
_TEMPLATES.filters.update(num=_num, pct=pct, percent=percent, when=_when, png_base64=_png_base64)


def _nightly_table(spec: TaskSpec, nightly: list[dict]) -> tuple[list[str], list[dict]]:
    """Bucket names (the spec's, then any other found) and one row per night with each bucket's counts."""
    names = [b.name for b in spec.buckets]
    names += sorted({r["bucket"] for r in nightly} - set(names))
    by_night: dict[Any, dict[str, dict]] = {}
    for r in nightly:
        by_night.setdefault(r["night"], {})[r["bucket"]] = r
    rows = [
        {
            "night": night,
            "rows": sum(c["rows"] for c in cells.values()),
            "cells": [cells.get(name) for name in names],
            "labeled": sum(c["labeled_rows"] for c in cells.values()),
            "off_format": sum(c["off_format_rows"] for c in cells.values()),
        }
        for night, cells in by_night.items()
    ]
    return names, rows


def render_html(data: ReportData, figures: dict, headline: dict) -> str:
    """The report page; every figure inline, so the file can be mailed or archived alone."""
    bucket_names, nights = _nightly_table(data.spec, data.nightly)
    return _TEMPLATES.get_template("report.html.j2").render(
        spec=data.spec,
        scope=data.scope,
        headline=headline,
        figures=figures,
        history=history_rows(data.history),
        trend=data.trend,
        health=data.health,
        bucket_names=bucket_names,
        nights=nights,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


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
