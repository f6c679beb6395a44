"""Does coverage help as a calibrator input? `platt_coverage` against the other methods on AG News.

    CALSCORE_CACHE=$PWD/.cache/calscore HF_HUB_OFFLINE=1 \\
        .venv/bin/python bench/bench_coverage.py ../shared/data/agnews/test.csv \\
        [--rows 400] [--seed 0] [--task bench/tasks/agnews.toml] [--zero-shot] [--scores FILE.parquet]

A seeded random sample of `--rows` rows of the AG News test CSV (`Class Index,Title,Description`;
1 World, 2 Sports, 3 Business, 4 Sci/Tech; text = "Title. Description") is written to a
Parquet file under var/bench/agnews/ (git-ignored; the data never enters the repository) and
scored with the task's scorer through `score_file` (what `calscore score-file` runs), which
appends `logprob_<label>` and `coverage`. `--scores` reuses such an output instead of scoring.
`--zero-shot` replaces the task's few-shot prompt by its instruction line alone (same labels and
variants): the model then mostly begins with other tokens (" The", " News", the article's words), the
off-format regime `platt_coverage` is meant for.

Then every method -- raw (the label shares), platt, platt_coverage, temperature, vector,
isotonic, auto -- is judged by 5-fold cross-fitting (each row predicted by a calibrator not
fitted on it): accuracy, ECE (15 equal-width bins) and NLL on all rows, on the off-format rows
(coverage < the task's coverage_floor) and on the on-format ones. Also printed: the off-format
share, how many rows the floor would send to the last bucket, and platt_coverage's fitted
per-label slopes on all rows (off_label_slope c: c > 0 sharpens off-format rows, c < 0 flattens).
"""
from __future__ import annotations

import argparse
import csv
import html
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_TASK = ROOT / "bench" / "tasks" / "agnews.toml"
OUT_DIR = ROOT / "var" / "bench" / "agnews"
METHODS = ("raw", "platt", "platt_coverage", "temperature", "vector", "isotonic", "auto")
# AG News class index (1-based) -> the task's label name, in the task file's order.
CLASS_LABELS = ("World", "Sports", "Business", "SciTech")
ZERO_SHOT = "Classify the news article as World, Sports, Business or Sci/Tech.\n\nArticle: {text}\nTopic:"


def clean(text: str) -> str:
    """AG News escapes: a backslash stands for a line break, '#36;' for '$', '#39;' for an apostrophe."""
    text = text.replace("\\", " ").replace(" #36;", " $").replace("#36;", "$")
    return " ".join(html.unescape(text.replace("#39;", "'")).split())


def read_agnews(path: Path) -> tuple[list[str], list[int]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    texts = [clean(f"{r['Title'].strip()}. {r['Description'].strip()}") for r in rows]
    return texts, [int(r["Class Index"]) - 1 for r in rows]


def score_sample(task, texts: list[str], y: list[int], out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from calscore.jobs.scoring.registry import make_scorer
    from calscore.jobs.scoring.score_file import score_file

    out.parent.mkdir(parents=True, exist_ok=True)
    sample = out.with_name(out.stem + ".input.parquet")
    pq.write_table(pa.table({"id": list(range(len(texts))), "text": texts, "y": y}), sample)
    scorer = make_scorer(task.model, task.prompt, task.labels)
    summary = score_file(scorer, sample, out, text_column="text", progress=False)
    print(f"scored {summary['rows']} rows in {summary['seconds']:.1f} s ({summary['rows_per_s']} rows/s, "
          f"{summary['model']}, {summary['precision']}, {summary['device']}); "
          f"{summary['truncated_rows']} truncated -> {out}")


def row(name: str, probs: np.ndarray, y: np.ndarray, mask: np.ndarray) -> list[str]:
    from calscore.calibration_store import metrics

    cells = [name]
    for m in (np.ones_like(mask), mask, ~mask):
        if m.sum() < 2:
            cells += ["–", "–", "–"]
            continue
        p, t = probs[m], y[m]
        cells += [f"{metrics.accuracy(p, t):.3f}", f"{metrics.ece(p, t):.3f}", f"{metrics.nll(p, t):.3f}"]
    return cells


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", type=Path, help="AG News test CSV (Class Index,Title,Description)")
    ap.add_argument("--rows", type=int, default=400, help="rows to sample and score (at most 1000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the row sample and of the folds")
    ap.add_argument("--task", type=Path, default=DEFAULT_TASK)
    ap.add_argument("--zero-shot", action="store_true", help="score with a zero-shot prompt (off-format regime)")
    ap.add_argument("--scores", type=Path, help="reuse this score_file output instead of scoring")
    args = ap.parse_args(argv)
    if not 10 <= args.rows <= 1000:
        ap.error("--rows must be between 10 and 1000 (2 shared CPU cores)")

    from calscore.calibration_store import cross_fit, make_calibrator, metrics
    from calscore.jobs.spec import load_spec

    task = load_spec(args.task)
    if args.zero_shot:
        prompt = type(task.prompt).model_validate({**task.prompt.model_dump(), "template": ZERO_SHOT, "messages": None})
        task = task.model_copy(update={"name": f"{task.name}-zeroshot", "prompt": prompt})
    labels = task.label_names
    if tuple(labels) != CLASS_LABELS:
        ap.error(f"the task's labels must be {CLASS_LABELS} in this order (AG News class 1..4), got {labels}")

    if args.scores is None:
        texts, classes = read_agnews(args.csv)
        idx = np.sort(np.random.default_rng(args.seed).choice(len(texts), size=args.rows, replace=False))
        out = OUT_DIR / f"{task.name}_{args.rows}_seed{args.seed}.parquet"
        score_sample(task, [texts[i] for i in idx], [classes[i] for i in idx], out)
    else:
        out = args.scores

    import pyarrow.parquet as pq

    table = pq.read_table(out)
    logprobs = np.column_stack([table.column(f"logprob_{label}").to_numpy() for label in labels])
    coverage = table.column("coverage").to_numpy()
    y = table.column("y").to_numpy().astype(int)
    n = len(y)
    floor = task.coverage_floor
    off = coverage < floor

    print(f"\n{n} rows (seed {args.seed}), task {task.name} ({args.task}), coverage_floor {floor}")
    print(f"class counts: {dict(zip(labels, np.bincount(y, minlength=len(labels)).tolist()))}")
    print(f"coverage: mean {coverage.mean():.3f}, median {np.median(coverage):.3f}")
    print(f"off-format rows (coverage < {floor}): {off.sum()} of {n} ({off.mean():.1%}); "
          f"coverage_floor {floor} would send these {off.sum()} rows to the last bucket ({task.buckets[-1].name})")

    probs = {}
    for method in METHODS:
        probs[method] = (metrics.raw_probs(logprobs) if method == "raw"
                         else cross_fit(method, labels, logprobs, y, folds=5, seed=args.seed))

    head = ["method", "acc (all)", "ECE (all)", "NLL (all)",
            f"acc (off, n={off.sum()})", "ECE (off)", "NLL (off)",
            f"acc (on, n={(~off).sum()})", "ECE (on)", "NLL (on)"]
    print("\nHeld-out (5-fold cross-fitted) figures; raw = label shares, uncalibrated:\n")
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for method in METHODS:
        print("| " + " | ".join(row(method, probs[method], y, off)) + " |")

    if off.any():
        print("\nOff-format rows' accuracy after calibration: "
              + ", ".join(f"{m} {metrics.accuracy(probs[m][off], y[off]):.3f}" for m in METHODS))
        conf_off = {m: float(probs[m][off].max(axis=1).mean()) for m in METHODS}
        print("Off-format rows' mean confidence: " + ", ".join(f"{m} {c:.3f}" for m, c in conf_off.items()))

    cal = make_calibrator("platt_coverage", labels).fit(logprobs, y)
    print("\nplatt_coverage fitted on all rows (one-vs-rest, per label):")
    for label, model in zip(labels, cal.models_):
        print(f"  {label:9s} slope {model['slope']:+.3f}  off_label_slope {model['off_label_slope']:+.3f}  "
              f"intercept {model['intercept']:+.3f}")
    auto = make_calibrator("auto", labels).fit(logprobs, y)
    print(f"auto (fitted on all rows) chooses {auto.chosen_method_}: {auto.reason_}")
    if getattr(auto, "cv_nll_", None):
        print("  its cross-validated NLL per candidate: "
              + ", ".join(f"{m} {v:.4f}" for m, v in sorted(auto.cv_nll_.items(), key=lambda kv: kv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
