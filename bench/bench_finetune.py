"""Fine-tuning on SST-2: base vs LoRA fine-tuned, raw and calibrated, on rows neither saw.

    CALSCORE_CACHE=.cache/calscore HF_HUB_OFFLINE=1 \\
        .venv/bin/python bench/bench_finetune.py [../shared/data/sst2/glue_sst2_dev.tsv] \\
        [--train 300] [--validation 100] [--epochs 6] [--seed 0]

The demo model and the demo task's few-shot prompt. The 872 GLUE SST-2 dev sentences are put
in a seeded random order (they have no time); the first `--train` rows train the adapter, the
next `--validation` rows stop it early and fit the fine-tuned model's calibrators, and the rest
are held out: every figure is on them. The base model's calibrators are fitted on train and
validation rows (it never trained on them), as `calscore finetune` does.

Prints accuracy, ECE, NLL and Brier of base raw, base calibrated, fine-tuned raw and fine-tuned
calibrated (the task's method, `auto`, and Platt and temperature), training time and rows/s,
and the scoring speed of base and (merged) fine-tuned model. Target: fine-tuned calibrated
beats base calibrated on held-out NLL.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_scoring import DEFAULT_DATA, read_sst2  # noqa: E402  (the same reader and default data)

METHODS = ("auto", "platt", "temperature")


def _score(spec, texts):
    """(label log-probabilities (n, K), coverage (n,), rows/s) from the scorer the nightly run would build."""
    from calscore.jobs.scoring.registry import make_scorer

    scorer = make_scorer(spec.model, spec.prompt, spec.labels)
    started = time.perf_counter()
    table = scorer.score(texts)
    seconds = time.perf_counter() - started
    lp = table["label_logprobs"].combine_chunks().flatten().to_numpy().reshape(-1, len(spec.labels))
    return lp, table["coverage"].to_numpy(), len(texts) / seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="SST-2 TSV (sentence<TAB>label, header)")
    parser.add_argument("--train", type=int, default=300, help="rows the adapter trains on")
    parser.add_argument("--validation", type=int, default=100, help="rows for early stopping and the fine-tuned calibrator")
    parser.add_argument("--epochs", type=int, default=6, help="at most this many epochs")
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0, help="seed of the row order, the LoRA initialisation and the batches")
    parser.add_argument("--task", type=Path, default=ROOT / "infra" / "tasks" / "demo.toml")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from calscore.jobs.finetune.artifact import write_adapter
    from calscore.jobs.finetune.comparison import BASE, TUNED, compare, pick
    from calscore.jobs.finetune.examples import Examples
    from calscore.jobs.finetune.split import Split
    from calscore.jobs.finetune.task_file import tuned_spec
    from calscore.jobs.finetune.training import Rows, TrainConfig, train_adapter
    from calscore.jobs.scoring.fingerprint import model_fingerprint
    from calscore.jobs.scoring.model_loading import load_model
    from calscore.jobs.spec import load_spec

    spec = load_spec(args.task)
    texts_all, sst2 = read_sst2(args.data.resolve())
    order = np.random.default_rng(args.seed).permutation(len(texts_all))
    texts = np.array(texts_all, dtype=object)[order]
    y = np.array([spec.label_names.index("positive" if sst2[i] == 1 else "negative") for i in order])
    n_fit = args.train + args.validation
    if n_fit >= len(texts):
        parser.error(f"--train + --validation must leave held-out rows (the file has {len(texts)})")
    print(f"SST-2 dev: {len(texts)} rows; {args.train} train, {args.validation} validation, "
          f"{len(texts) - n_fit} held out; torch threads {torch.get_num_threads()}", flush=True)

    base_lp, base_cov, base_rate = _score(spec, list(texts))
    print(f"base model scored every row: {base_rate:.1f} rows/s", flush=True)
    index = np.arange(len(texts))
    examples = Examples(row_ids=np.array([f"sst2-{i}" for i in order], dtype=object), texts=texts, y=y,
                        scored_at=index.astype("datetime64[us]"), segments=np.full(len(texts), None, dtype=object),
                        weights=np.ones(len(texts)), base_logprobs=base_lp, base_coverage=base_cov)
    split = Split(train=index[:args.train], validation=index[args.train:n_fit], heldout=index[n_fit:],
                  times=examples.scored_at, rule={"bench": "seeded random order"})

    config = TrainConfig(max_epochs=args.epochs, learning_rate=args.learning_rate, seed=args.seed)
    train = Rows(list(texts[split.train]), y[split.train])
    validation = Rows(list(texts[split.validation]), y[split.validation])

    def progress(step: dict) -> None:
        if "validation_nll" in step:
            print(f"  epoch {step['epoch']}: training loss {step['loss']:.4f}, validation NLL "
                  f"{step['validation_nll']:.4f}", flush=True)

    result = train_adapter(load_model(spec.model), spec.prompt, spec.labels, train, validation, config, progress)
    training = result.metrics()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = {"base_model": {"reference": spec.model.describe(), "fingerprint": model_fingerprint(spec.model)},
                    "lora": result.lora, "metrics": {"training": training}}
        folder = write_adapter(result.peft_model, Path(tmp), spec.name, manifest, split.row_ids(examples.row_ids))
        scored = np.concatenate([split.validation, split.heldout])
        tuned_lp, tuned_cov, tuned_rate = _score(tuned_spec(spec, folder), list(texts[scored]))
    figures = compare(spec, examples, split, tuned_lp, tuned_cov, methods=METHODS)

    print(f"\ntraining: {training['seconds']:.0f} s, {training['train_rows_per_second']:.2f} training rows/s "
          f"(epochs run {training['epochs_run']}, best {training['best_epoch']}; validation NLL "
          f"{training['validation_nll_before']:.4f} -> {training['validation_nll']:.4f})")
    print(f"scoring: base {base_rate:.1f} rows/s, fine-tuned (merged) {tuned_rate:.1f} rows/s\n")
    print(f"held-out rows: {figures['heldout_rows']} (calibrators fitted on {figures['fit_rows'][BASE]} rows for "
          f"the base, {figures['fit_rows'][TUNED]} for the fine-tuned model)\n")
    print("| model | scores | accuracy | ECE | NLL | Brier |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for model in (BASE, TUNED):
        for scores in ("raw", *METHODS):
            row = pick(figures, model, scores)
            if row is not None:
                print(f"| {model} | {scores} | {row['accuracy']:.4f} | {row['ece']:.4f} | {row['nll']:.4f} | "
                      f"{row['brier']:.4f} |")
    base_nll, tuned_nll = (pick(figures, m, spec.calibration.method)["nll"] for m in (BASE, TUNED))
    verdict = "met" if tuned_nll < base_nll else "NOT met"
    print(f"\ntarget (fine-tuned calibrated NLL < base calibrated NLL, {spec.calibration.method}): {verdict} "
          f"({tuned_nll:.4f} vs {base_nll:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
