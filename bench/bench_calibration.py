"""Raw vs every calibration method on scored rows: k-fold cross-fitted held-out figures as a markdown table.

Input: a Parquet file with `label_logprobs` (list<double>, in label order)
and `y` (int label index), optionally a weight column (inverse inclusion
probabilities). Every calibrated figure comes from rows the calibrator was
not fitted on (k-fold cross-fitting).

Example:
    python bench/bench_calibration.py var/bench/sst2_scores.parquet --labels negative positive
    python bench/bench_calibration.py scores.parquet --labels a b c d --methods platt temperature --folds 10
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from calscore.calibration_store import METHODS, metrics
from calscore.calibration_store.apply import logprob_matrix
from calscore.calibration_store.evaluation import cross_fit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parquet", type=Path, help="scored rows: label_logprobs list<double> + y int")
    parser.add_argument("--labels", nargs="+", required=True, help="label names, in the order of label_logprobs")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, help="methods to compare")
    parser.add_argument("--folds", type=int, default=5, help="cross-fitting folds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold split (default 0)")
    parser.add_argument("--n-bins", type=int, default=metrics.DEFAULT_N_BINS, help="equal-width ECE bins (default 15)")
    parser.add_argument("--weight-column", default=None, help="optional column of sample weights")
    return parser.parse_args(argv)


def load(path: Path, labels: list[str], weight_column: str | None):
    table = pq.read_table(path)
    missing = {"label_logprobs", "y", *([weight_column] if weight_column else [])} - set(table.column_names)
    if missing:
        raise SystemExit(f"{path}: missing column(s) {sorted(missing)}; has {table.column_names}")
    logprobs = logprob_matrix(table["label_logprobs"], labels)
    y = np.asarray(table["y"].to_numpy(), dtype=np.int64)
    weights = None if weight_column is None else np.asarray(table[weight_column].to_numpy(), dtype=np.float64)
    return logprobs, y, weights


def row(name: str, probs: np.ndarray, y: np.ndarray, weights, n_bins: int, seconds: float) -> str:
    figures = [
        metrics.accuracy(probs, y, weights),
        metrics.ece(probs, y, n_bins=n_bins, weights=weights),
        metrics.nll(probs, y, weights),
        metrics.brier(probs, y, weights),
    ]
    return f"| {name} | " + " | ".join(f"{v:.4f}" for v in figures) + f" | {seconds:.2f} |"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logprobs, y, weights = load(args.parquet, args.labels, args.weight_column)
    print(f"{args.parquet.name}: {len(y)} rows, labels {args.labels}, {args.folds}-fold cross-fitted "
          f"(seed {args.seed}){', weighted' if weights is not None else ''}\n")
    print(f"| method | accuracy | ECE({args.n_bins}) | NLL | Brier | seconds |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(row("raw", metrics.raw_probs(logprobs), y, weights, args.n_bins, 0.0))
    for method in args.methods:
        start = time.perf_counter()
        try:
            probs = cross_fit(method, args.labels, logprobs, y, weights, folds=args.folds, seed=args.seed)
        except ValueError as exc:
            print(f"| {method} | failed: {exc} | | | | |")
            continue
        print(row(method, probs, y, weights, args.n_bins, time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
