"""The README's report figures (docs/figures/*.png): a report's pictures and a seeded 3-label sample's.

    .venv/bin/python bench/readme_figures.py                          # the seeded warehouse -> docs/figures
    calscore demo && .venv/bin/python bench/readme_figures.py --report var/demo/report

By default it writes `calscore report`'s pictures for the seeded synthetic warehouse the report tests use
(tests/report_fixtures.py: two nights of a miscalibrated binary model, audits, a Platt champion, two
reliability snapshots; a few seconds, no model); with --report it takes them from a report folder instead. It
keeps the reliability (top-label and positive-class), per-segment and trend PNGs, and draws the class-wise
reliability and confusion matrix of a seeded 3-label sample (both reports are of binary tasks, which get the
positive-class view instead); each picture is shrunk to at most 760 px wide and a 256-colour palette so that it
stays under 150 KB.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from calscore.jobs.reports.classwise import classwise_chart, confusion_chart

KINDS = ("reliability", "reliability-positive", "segments", "trend")
MAX_WIDTH = 760
MAX_BYTES = 150_000


def shrink(src: Path, dst: Path) -> Path:
    """src as a palette PNG at most MAX_WIDTH wide (refused above MAX_BYTES)."""
    img = Image.open(src).convert("RGB")
    if img.width > MAX_WIDTH:
        img = img.resize((MAX_WIDTH, round(img.height * MAX_WIDTH / img.width)), Image.LANCZOS)
    dst.parent.mkdir(parents=True, exist_ok=True)
    img.quantize(colors=256, method=Image.MEDIANCUT).save(dst, optimize=True)
    if dst.stat().st_size > MAX_BYTES:
        raise SystemExit(f"{dst} is {dst.stat().st_size} bytes, over {MAX_BYTES}")
    return dst


def synthetic_multiclass(out: Path, seed: int = 5, n: int = 600) -> list[Path]:
    """Class-wise reliability and confusion matrix of a seeded, overconfident 3-label sample, raw and after a
    temperature of 1.6 (figures from the report's own drawing functions)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    logits = 2.4 * (rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[y])
    raw = np.exp(logits - logits.max(axis=1, keepdims=True))
    raw /= raw.sum(axis=1, keepdims=True)
    cal = np.exp(logits / 1.6 - (logits / 1.6).max(axis=1, keepdims=True))
    cal /= cal.sum(axis=1, keepdims=True)
    inputs = {"raw": raw, "calibrated": cal, "y": y, "weights": None, "decided": cal.argmax(axis=1)}
    labels = ["joy", "anger", "fear"]
    tmp = out / "tmp"
    cw = classwise_chart(inputs, labels, tmp / "classwise.png",
                         "synthetic 3-label example: class-wise reliability · temperature 1.6")["path"]
    cm = confusion_chart(inputs, labels, tmp / "confusion.png",
                         "synthetic 3-label example: confusion matrix")["path"]
    written = [shrink(cw, out / "report-classwise.png"), shrink(cm, out / "report-confusion.png")]
    for p in (cw, cm):
        p.unlink()
    tmp.rmdir()
    return written


def fixture_report(folder: Path) -> Path:
    """The seeded report-test warehouse in `folder`, and its report written beside it; the report's folder."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from report_fixtures import fill_report_warehouse

    from calscore.jobs.reports.html_report import write_report

    filled = fill_report_warehouse(folder / "calscore.duckdb")
    return write_report(filled["spec"], folder / "report").parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=None,
                        help="a report folder (default: write the seeded warehouse's report to a temporary one)")
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    args = parser.parse_args(argv)
    if args.report is None:
        with tempfile.TemporaryDirectory() as tmp:
            return _write(fixture_report(Path(tmp)), args.out)
    return _write(args.report, args.out)


def _write(report: Path, out: Path) -> None:
    written = []
    for kind in KINDS:
        found = sorted(p for p in report.glob(f"report-*-{kind}.png"))
        if not found:
            raise SystemExit(f"no report-*-{kind}.png in {report}: run `calscore demo` (or `calscore report`) first")
        written.append(shrink(found[-1], out / f"report-{kind}.png"))
    written += synthetic_multiclass(out)
    for p in written:
        print(f"{p} {p.stat().st_size // 1000} KB")


if __name__ == "__main__":
    sys.exit(main())
