"""Fine-tuning flow: train a LoRA adapter on the task's labels, write it, compare with the base model.

The work is `jobs.finetune.run.finetune_task` plus the report (`jobs.reports.finetune_report`);
the flow adds a log line per epoch and the Markdown artifact. `calscore finetune` runs the
same `finetune_and_report` in-process when no Prefect API is configured.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Callable

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from calscore.flows.failures import fails_cleanly
from calscore.flows.run_names import run_name
from calscore.jobs.finetune.run import finetune_task
from calscore.jobs.finetune.training import TrainConfig
from calscore.jobs.reports.finetune_report import finetune_markdown, write_finetune_report
from calscore.jobs.spec import TaskSpec, check_resources, load_spec


def finetune_and_report(spec: TaskSpec, *, root: str | None = None, report_dir: str | None = None,
                        holdout_since: datetime | None = None, holdout_fraction: float = 0.2,
                        validation_fraction: float = 0.25, config: TrainConfig = TrainConfig(),
                        segment_of: dict | None = None, on_step: Callable[[dict], None] | None = None) -> dict:
    """Train, write the adapter and its task file, compare, write the report; return paths and the Markdown."""
    outcome = finetune_task(spec, Path(root) if root else None, config=config, validation_fraction=validation_fraction,
                            holdout_fraction=holdout_fraction, holdout_since=holdout_since, segment_of=segment_of,
                            on_step=on_step)
    paths = write_finetune_report(spec, outcome, Path(report_dir) if report_dir else outcome.folder / "report")
    return {"outcome": outcome, "adapter": str(outcome.folder), "task_file": str(outcome.task_file),
            "task_version": outcome.task_version, "report": {k: str(v) for k, v in paths.items()},
            "markdown": finetune_markdown(outcome, paths)}


def _epoch_log(logger) -> Callable[[dict], None]:
    def log(step: dict) -> None:
        if "validation_nll" in step:
            logger.info("epoch %d: training loss %.4f, validation NLL %.4f", step["epoch"], step["loss"],
                        step["validation_nll"])

    return log


@flow(name="calscore-finetune", flow_run_name=run_name)
@fails_cleanly
def finetune(task_path: str, holdout_since: datetime | None = None, holdout_fraction: float = 0.2,
             validation_fraction: float = 0.25, max_epochs: int = 6, learning_rate: float = 5e-4, seed: int = 0,
             root: str | None = None, report_dir: str | None = None) -> dict:
    """Fine-tune the task's model on its labels (time split), write the adapter, compare with the base."""
    spec = check_resources(load_spec(task_path))
    logger = get_run_logger()
    config = TrainConfig(max_epochs=max_epochs, learning_rate=learning_rate, seed=seed)
    result = finetune_and_report(spec, root=root, report_dir=report_dir, holdout_since=holdout_since,
                                 holdout_fraction=holdout_fraction, validation_fraction=validation_fraction,
                                 config=config, on_step=_epoch_log(logger))
    logger.info("adapter %s; task file %s (task version %s); report %s", result["adapter"], result["task_file"],
                result["task_version"], result["report"]["html"])
    key = spec.name.lower().replace("_", "-")
    create_markdown_artifact(result["markdown"], key=f"{key}-finetune", description="calscore fine-tuned vs base")
    return {k: v for k, v in result.items() if k != "outcome"}
