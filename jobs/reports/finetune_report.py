"""The base vs fine-tuned report: HTML (reliability diagram embedded) and Markdown.

    paths = write_finetune_report(spec, outcome, out_dir)       # {"html", "markdown", "diagram"}
    text = finetune_markdown(outcome)                           # also the Prefect artifact

The figures are `calscore.jobs.finetune.comparison.compare`'s: both models on the same held-out
labels, raw and calibrated by each method, overall and per segment. The Markdown keeps the raw
and the task's calibration method (`[calibration] method`); the HTML has every method.
"""
from __future__ import annotations

import base64
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from matplotlib.figure import Figure

from calscore.jobs.finetune.comparison import BASE, TUNED, pick
from calscore.jobs.finetune.run import Outcome
from calscore.jobs.reports.plotting import CALIBRATED_COLOR, RAW_COLOR, pct, save
from calscore.jobs.spec import TaskSpec

_FIGURES = ("accuracy", "ece", "mce", "nll", "brier", "mean_confidence")


def _num(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _png_base64(path: Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


_TEMPLATES = Environment(loader=PackageLoader("calscore.jobs.reports", "templates"), autoescape=True,
                         undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_TEMPLATES.filters.update(num=_num, pct=pct, png_base64=_png_base64)


def _bucket_text(row: dict) -> list[str]:
    return [f"{pct(b['share'])} ({pct(b['accuracy'])})" for b in row["buckets"]]


def table_rows(figures: dict, segment: str = "all", methods: list[str] | None = None) -> list[list[str]]:
    """Model, scores, n, the figures and each bucket's "share (accuracy)", for one row group."""
    out = []
    for model in (BASE, TUNED):
        for scores in methods or figures["methods"]:
            row = pick(figures, model, scores, segment)
            if row is not None:
                out.append([model, scores, str(row["n"]), *(_num(row[f]) for f in _FIGURES), *_bucket_text(row)])
    return out


def _header(figures: dict) -> list[str]:
    return ["model", "scores", "n", "accuracy", "ECE", "MCE", "NLL", "Brier", "mean conf.",
            *(f"{b}: share (acc.)" for b in figures["buckets"])]


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def segments_of(figures: dict) -> list[str]:
    return sorted({r["segment"] for r in figures["rows"]} - {"all"})


def finetune_markdown(outcome: Outcome, paths: dict | None = None) -> str:
    figures, manifest = outcome.figures, outcome.manifest
    primary = figures["primary_method"]
    training = manifest["metrics"]["training"]
    rows = manifest["data"]["rows"]
    lines = [
        f"## Fine-tuned vs base: {manifest['task']['name']}",
        "",
        f"Adapter `{outcome.folder}` (content {manifest['content_sha256'][:12]}), task version "
        f"`{outcome.task_version}` (base `{manifest['task']['base_task_version']}`).",
        f"Labels split by time: {rows['train']} train, {rows['validation']} validation, {rows['heldout']} held out. "
        f"Figures on the {figures['heldout_rows']} held-out labels, which neither the adapter nor any calibrator "
        f"saw; calibrators fitted on {figures['fit_rows'][BASE]} labels (base) and {figures['fit_rows'][TUNED]} "
        "(fine-tuned: validation only).",
        f"Training: best epoch {training['best_epoch']} of {training['epochs_run']}, validation NLL "
        f"{training['validation_nll_before']:.3f} -> {training['validation_nll']:.3f}, {training['seconds']:.0f} s "
        f"({training['train_rows_per_second']:.1f} rows/s, {training['device']}).",
        "",
        "### All held-out rows",
        "",
        *_markdown_table(_header(figures), table_rows(figures, "all", ["raw", primary])),
    ]
    for segment in segments_of(figures):
        lines += ["", f"### Segment {segment}", "",
                  *_markdown_table(_header(figures), table_rows(figures, segment, ["raw", primary]))]
    if paths:
        lines += ["", f"Report: `{paths['html']}`; task file: `{outcome.task_file}`"]
    return "\n".join(lines) + "\n"


def _panel(ax, row: dict | None, title: str, color: str) -> None:
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    if row is not None and row["bins"]:
        conf = [b["confidence"] for b in row["bins"]]
        acc = [b["accuracy"] for b in row["bins"]]
        counts = [b["count"] for b in row["bins"]]
        ax.plot(conf, acc, color=color, linewidth=1.2)
        ax.scatter(conf, acc, s=[20 + 180 * c / max(counts) for c in counts], color=color, alpha=0.8, zorder=3)
        title += f"\naccuracy {pct(row['accuracy'])}, ECE {row['ece']:.3f}, NLL {row['nll']:.3f} (n={row['n']})"
    else:
        title += "\n(not computed)"
    ax.set_title(title, fontsize=9)
    ax.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="confidence", ylabel="observed accuracy")


def draw_diagram(figures: dict, path: Path) -> Path:
    """Reliability of base and fine-tuned, raw and calibrated by the task's method, on the held-out rows."""
    primary = figures["primary_method"]
    fig = Figure(figsize=(9, 8.5), layout="constrained")
    axes = fig.subplots(2, 2)
    for i, model in enumerate((BASE, TUNED)):
        for j, (scores, color) in enumerate((("raw", RAW_COLOR), (primary, CALIBRATED_COLOR))):
            _panel(axes[i][j], pick(figures, model, scores), f"{model}, {scores}", color)
    fig.suptitle("Held-out reliability: base vs fine-tuned (dot size = rows)")
    return save(fig, path)


def write_finetune_report(spec: TaskSpec, outcome: Outcome, out_dir: Path) -> dict:
    """Write the HTML and Markdown report and the diagram PNG into `out_dir`; return their paths."""
    out_dir = Path(out_dir)
    stem = f"finetune-{spec.name}-{outcome.manifest['content_sha256'][:12]}"
    diagram = draw_diagram(outcome.figures, out_dir / f"{stem}-reliability.png")
    paths = {"html": out_dir / f"{stem}.html", "markdown": out_dir / f"{stem}.md", "diagram": diagram}
    figures = outcome.figures
    html = _TEMPLATES.get_template("finetune_report.html.j2").render(
        outcome=outcome, manifest=outcome.manifest, figures=figures, header=_header(figures), diagram=diagram,
        overall=table_rows(figures), segments=[(s, table_rows(figures, s)) for s in segments_of(figures)],
        base=BASE, tuned=TUNED,
    )
    paths["html"].write_text(html, encoding="utf-8")
    paths["markdown"].write_text(finetune_markdown(outcome, paths), encoding="utf-8")
    return paths
