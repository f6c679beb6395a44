"""Fine-tune a task's model on its current labels, end to end, without Prefect.

    outcome = finetune_task(spec, holdout_since=...)    # spec: the base task file (no adapter)
    outcome.folder, outcome.task_file, outcome.figures

Steps: the labeled rows the base task version scored (`examples`) -> time split (`split`) ->
LoRA training with early stopping (`training`) -> the adapter folder with its manifest
(`artifact`) and a task file naming it (`task_file`) -> the validation and held-out rows scored
by the adapter as the nightly run will load it (verified, merged) -> base vs fine-tuned on the
held-out rows (`comparison`), whose headline figures go into the manifest.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from calscore.jobs.finetune.artifact import update_manifest, write_adapter
from calscore.jobs.finetune.comparison import BASE, TUNED, compare, pick
from calscore.jobs.finetune.errors import FinetuneError
from calscore.jobs.finetune.examples import load_examples
from calscore.jobs.finetune.split import labels_hash, time_split
from calscore.jobs.finetune.task_file import tuned_spec, write_task_file
from calscore.jobs.finetune.training import Rows, TrainConfig, train_adapter
from calscore.jobs.scoring.fingerprint import model_fingerprint
from calscore.jobs.scoring.model_loading import load_model
from calscore.jobs.scoring.registry import make_scorer
from calscore.jobs.spec import TaskSpec

OBJECTIVE = "first-token cross-entropy on the true label's token mass: -log sum_{v in variants(y)} p(v)"


@dataclass(frozen=True)
class Outcome:
    folder: Path
    task_file: Path
    manifest: dict
    figures: dict
    task_version: str  # the fine-tuned task's


def default_root(spec: TaskSpec) -> Path:
    return Path(spec.warehouse.path).parent / "adapters"


def _check(spec: TaskSpec) -> None:
    if spec.model.backend != "transformers":
        raise FinetuneError(f"task {spec.name}: fine-tuning needs [model] backend = \"transformers\" "
                            f"(this task uses {spec.model.backend!r})")
    if spec.model.adapter is not None:
        raise FinetuneError(f"task {spec.name} already has an adapter ({spec.model.adapter}); fine-tune from the "
                            "base task file, whose scores and labels the new adapter is trained and judged on")


def headline(figures: dict, method: str) -> dict:
    """The held-out figures the manifest keeps: accuracy, ECE and NLL, raw and calibrated, both models."""
    out = {}
    for model in (BASE, TUNED):
        for scores in ("raw", method):
            row = pick(figures, model, scores)
            if row is not None:
                out[f"{model} {scores}"] = {k: row[k] for k in ("n", "accuracy", "ece", "nll", "brier")}
    return out


def finetune_task(
    spec: TaskSpec,
    root: Path | None = None,
    *,
    config: TrainConfig = TrainConfig(),
    validation_fraction: float = 0.25,
    holdout_fraction: float = 0.2,
    holdout_since: datetime | None = None,
    segment_of: Mapping[str, str] | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> Outcome:
    """Train, write, score and compare (see the module docstring). `segment_of` relabels held-out
    rows' segments for the comparison (row id -> segment; others keep theirs)."""
    _check(spec)
    examples = load_examples(spec)
    split = time_split(examples.scored_at, examples.row_ids, validation_fraction=validation_fraction,
                       holdout_fraction=holdout_fraction, holdout_since=holdout_since)
    train, validation = examples.take(split.train), examples.take(split.validation)
    loaded = load_model(spec.model)
    result = train_adapter(loaded, spec.prompt, spec.labels, Rows(list(train.texts), train.y),
                           Rows(list(validation.texts), validation.y), config, on_step)
    labels = spec.label_names
    manifest = {
        "base_model": {"reference": spec.model.describe(), "fingerprint": model_fingerprint(spec.model)},
        "task": {"name": spec.name, "base_task_version": spec.task_version, "labels": labels},
        "lora": result.lora,
        "objective": OBJECTIVE,
        "data": {"train_labels_sha256": labels_hash(train.row_ids, [labels[i] for i in train.y], train.texts),
                 "rows": {"train": len(train), "validation": len(validation), "heldout": len(split.heldout)}},
        "split": split.record(examples.row_ids),
        "hyperparameters": config.hyperparameters(),
        "seed": config.seed,
        "metrics": {"training": result.metrics()},
    }
    folder = write_adapter(result.peft_model, root or default_root(spec), spec.name, manifest,
                           split.row_ids(examples.row_ids))
    del result, loaded  # the training copy of the model; scoring loads the adapter from disk
    task_file = write_task_file(spec, folder, folder / "task.toml")
    tuned = tuned_spec(spec, folder)
    scored_rows = np.concatenate([split.validation, split.heldout])
    scores = make_scorer(tuned.model, tuned.prompt, tuned.labels).score(list(examples.texts[scored_rows]))
    segments = None
    if segment_of:
        held = examples.take(split.heldout)
        segments = np.array([segment_of.get(r, s) for r, s in zip(held.row_ids, held.segments)], dtype=object)
    tuned_lp = scores["label_logprobs"].combine_chunks().flatten().to_numpy().reshape(-1, len(labels))
    figures = compare(spec, examples, split, tuned_lp, scores["coverage"].to_numpy(), segments)
    manifest = update_manifest(folder, heldout=headline(figures, spec.calibration.method))
    return Outcome(folder=folder, task_file=task_file, manifest=manifest, figures=figures,
                   task_version=tuned.task_version)
