"""Full matrix scaling (`matrix`) against scikit-learn's multinomial logistic regression, on AG News and TREC.

    CALSCORE_CACHE=$PWD/.cache/calscore HF_HUB_OFFLINE=1 \\
        .venv/bin/python bench/bench_matrix.py ../shared/data [--seed 0] [--splits 10]

DATA is the shared data folder (`agnews/test.csv`, `trec/test.txt`; never copied here). For each
data set a seeded random sample of its rows is scored once by the embedded demo model with the
task file in bench/tasks/ (agnews.toml: 4 labels; trec.toml: 6 labels) through `score_file`, and
the label log-probabilities are cached under var/bench/matrix/ (git-ignored), so a re-run only
fits. The sample is split, stratified by label, into fit rows and held-out rows: AG News
800 -> 400 (1,200 of its 7,600 rows), TREC 300 -> 200 (its whole test set).

On the same stored log-probabilities, fitted on the fit rows and judged on the held-out rows:
calscore's `matrix` with its default regularisation, and the reference, scikit-learn's
`LogisticRegression` (lbfgs, multinomial, L2 with its default C = 1) on the same inputs, the
label log-shares. Held-out accuracy, ECE (15 equal-width bins) and NLL of both (raw label shares
and vector scaling for context) are averaged over `--splits` seeded splits, since one split of 200
or 400 rows moves the ECE by more than the target; then the differences matrix - sklearn (mean and
standard deviation over the splits) and whether their means meet the target: |ECE difference| <=
0.005 and |accuracy difference| <= 0.01.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from bench_coverage import read_agnews, score_sample

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "var" / "bench" / "matrix"
ECE_TARGET, ACCURACY_TARGET = 0.005, 0.01
# TREC's coarse classes in the order of bench/tasks/trec.toml's labels.
TREC_CLASSES = ("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM")


def read_trec(path: Path) -> tuple[list[str], list[int]]:
    """TREC lines are 'COARSE:fine question'; the text is the question."""
    texts, classes = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        label, text = line.split(" ", 1)
        texts.append(text.strip())
        classes.append(TREC_CLASSES.index(label.split(":")[0]))
    return texts, classes


@dataclass(frozen=True)
class Dataset:
    name: str
    file: str  # inside the data folder
    task: Path
    read: Callable[[Path], tuple[list[str], list[int]]]
    fit_rows: int
    held_out_rows: int


DATASETS = (
    Dataset("AG News", "agnews/test.csv", ROOT / "bench" / "tasks" / "agnews.toml", read_agnews, 800, 400),
    Dataset("TREC", "trec/test.txt", ROOT / "bench" / "tasks" / "trec.toml", read_trec, 300, 200),
)


def scored_sample(data: Dataset, data_dir: Path, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(labels, logprobs, y) of the data set's seeded sample, scored once and then read from var/bench/matrix/."""
    import pyarrow.parquet as pq

    from calscore.jobs.spec import load_spec

    task = load_spec(data.task)
    n = data.fit_rows + data.held_out_rows
    out = OUT_DIR / f"{task.name}_{n}_seed{seed}.parquet"
    if out.exists():
        print(f"{data.name}: reusing the scores in {out}")
    else:
        texts, classes = data.read(data_dir / data.file)
        idx = np.sort(np.random.default_rng(seed).choice(len(texts), size=n, replace=False))
        score_sample(task, [texts[i] for i in idx], [classes[i] for i in idx], out)
    table = pq.read_table(out)
    logprobs = np.column_stack([table.column(f"logprob_{label}").to_numpy() for label in task.label_names])
    return task.label_names, logprobs, table.column("y").to_numpy().astype(int)


def held_out_figures(labels, logprobs: np.ndarray, y: np.ndarray, fit: np.ndarray, test: np.ndarray) -> dict:
    """Each method's held-out (accuracy, ECE, NLL), fitted on the fit rows."""
    from sklearn.linear_model import LogisticRegression

    from calscore.calibration_store import make_calibrator, metrics
    from calscore.calibration_store.base import log_shares

    reference = LogisticRegression(max_iter=10_000).fit(log_shares(logprobs[fit]), y[fit])
    probs = {"raw": metrics.raw_probs(logprobs[test])}
    for method in ("vector", "matrix"):
        probs[method] = make_calibrator(method, labels).fit(logprobs[fit], y[fit]).predict_proba(logprobs[test])
    probs["sklearn"] = reference.predict_proba(log_shares(logprobs[test]))
    t = y[test]
    return {m: (metrics.accuracy(p, t), metrics.ece(p, t), metrics.nll(p, t)) for m, p in probs.items()}


def over_splits(data: Dataset, data_dir: Path, seed: int, splits: int) -> tuple[int, dict[str, np.ndarray]]:
    """(K, method -> (splits, 3) array of held-out accuracy, ECE, NLL) over seeded stratified splits."""
    from sklearn.model_selection import train_test_split

    labels, logprobs, y = scored_sample(data, data_dir, seed)
    runs = []
    for split in range(seed, seed + splits):
        fit, test = train_test_split(np.arange(len(y)), test_size=data.held_out_rows, stratify=y, random_state=split)
        runs.append(held_out_figures(labels, logprobs, y, fit, test))
    return len(labels), {m: np.array([run[m] for run in runs]) for m in runs[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the shared data folder, e.g. ../shared/data")
    ap.add_argument("--seed", type=int, default=0, help="seed of the row sample and of the first split")
    ap.add_argument("--splits", type=int, default=10, help="fit/held-out splits to average over")
    args = ap.parse_args(argv)

    results = [(data, *over_splits(data, args.data, args.seed, args.splits)) for data in DATASETS]

    print(f"\nHeld-out figures, mean over {args.splits} splits (ECE on 15 equal-width bins); sklearn = "
          "LogisticRegression(C=1), multinomial, on the label log-shares:\n")
    print("| data (labels, fit -> held out) | method | accuracy | ECE | NLL |")
    print("| --- | --- | ---: | ---: | ---: |")
    for data, k, figures in results:
        for method, runs in figures.items():
            acc, ece, nll = runs.mean(axis=0)
            print(f"| {data.name} ({k}, {data.fit_rows} -> {data.held_out_rows}) | {method} | {acc:.3f} | {ece:.3f} "
                  f"| {nll:.3f} |")
    print("\n| data | accuracy: matrix - sklearn | ECE: matrix - sklearn | target met |")
    print("| --- | ---: | ---: | --- |")
    for data, _, figures in results:
        diff = figures["matrix"] - figures["sklearn"]
        d_acc, d_ece = diff[:, 0].mean(), diff[:, 1].mean()
        met = abs(d_acc) <= ACCURACY_TARGET and abs(d_ece) <= ECE_TARGET
        print(f"| {data.name} | {d_acc:+.3f} (sd {diff[:, 0].std():.3f}) | {d_ece:+.3f} (sd {diff[:, 1].std():.3f}) "
              f"| {'yes' if met else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
