"""`calscore finetune`: a LoRA adapter trained on the task's labels, and the report against the base model."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from calscore.cli.app import TaskOption, app, prefect_api_configured, task_from
from calscore.cli.prefect_api import prefect_ready


def _progress_bar():
    """A progress bar on stderr with the training loss (shown even where library bars are quieted)."""
    from tqdm import tqdm

    bar = {"bar": None}

    def on_step(step: dict) -> None:
        if bar["bar"] is None or step["step"] == 1 and "validation_nll" not in step:
            if bar["bar"] is not None:
                bar["bar"].close()
            bar["bar"] = tqdm(total=step["steps"], desc=f"epoch {step['epoch']}", unit="step", disable=False,
                              leave=True, dynamic_ncols=True)
        b = bar["bar"]
        if "validation_nll" in step:
            b.set_postfix(loss=f"{step['loss']:.4f}", val_nll=f"{step['validation_nll']:.4f}")
            b.close()
            bar["bar"] = None
            return
        b.update(1)
        b.set_postfix(loss=f"{step['loss']:.4f}")

    return on_step


@app.command()
def finetune(
    task: Path = TaskOption,
    holdout_since: datetime = typer.Option(None, help="Hold out the labeled rows scored at or after this time "
                                                      "(ISO, UTC); default the newest --holdout-fraction."),
    holdout_fraction: float = typer.Option(0.2, min=0.01, max=0.9, help="Newest share of labeled rows held out."),
    validation_fraction: float = typer.Option(0.25, min=0.01, max=0.9,
                                              help="Newest share of the rest for early stopping (and the "
                                                   "fine-tuned calibrator); the older rows train."),
    epochs: int = typer.Option(6, min=1, help="At most this many epochs (early stopping on validation NLL)."),
    learning_rate: float = typer.Option(5e-4, min=1e-6, help="AdamW learning rate of the LoRA weights."),
    seed: int = typer.Option(0, help="Seed of the LoRA initialisation and the row order."),
    out: Path = typer.Option(None, help="Folder for adapters (default: 'adapters' beside the warehouse)."),
    report_out: Path = typer.Option(None, help="Folder for the report (default: the adapter's 'report')."),
) -> None:
    """Train a LoRA adapter on the task's labels and compare it with the base model on held-out labels.

    Labels are split by scoring time: the oldest train, the next validate (early stopping), the
    newest are held out and never trained on. Writes the adapter (safetensors + JSON manifest),
    a task file naming it (its own task_version), and an HTML/Markdown report. Runs as a Prefect
    flow when a Prefect API is configured (PREFECT_API_URL), else in this process.

    Example: calscore finetune --task infra/tasks/demo.toml --holdout-since 2026-03-02
    """
    from calscore.flows.finetune import finetune as finetune_flow, finetune_and_report
    from calscore.jobs.finetune.training import TrainConfig

    spec = task_from(task)
    options = dict(holdout_since=holdout_since, holdout_fraction=holdout_fraction,
                   validation_fraction=validation_fraction, root=str(out) if out else None,
                   report_dir=str(report_out) if report_out else None)
    if prefect_api_configured():
        prefect_ready()  # the Prefect API answers within its deadline, or the temporary server has started
        result = finetune_flow(str(spec.source_path), max_epochs=epochs, learning_rate=learning_rate, seed=seed,
                               **options)
    else:
        config = TrainConfig(max_epochs=epochs, learning_rate=learning_rate, seed=seed)
        result = finetune_and_report(spec, config=config, on_step=_progress_bar(), **options)
    typer.echo(result["markdown"])
    typer.echo(f"adapter:   {result['adapter']}\ntask file: {result['task_file']}\nreport:    {result['report']['html']}")


@app.command("finetune-demo")
def finetune_demo(task: Path = typer.Option(Path("infra/tasks/demo.toml"), "--task", "-t",
                                            help="The demo task file.")) -> None:
    """The demo story, then a LoRA adapter trained on night 1's audit labels and judged on night 2.

    Runs `calscore demo` (starting var/demo afresh), fine-tunes the demo model on night 1's 600
    audit labels (450 train, 150 validate), and reports base vs fine-tuned on night 2's 1,000
    hidden labels, which neither the adapter nor any calibrator saw, per segment (neutral rows
    split into their sports and workplace domains). What `make finetune-demo` runs.

    Example: calscore finetune-demo
    """
    from calscore.flows.demo import run_finetune_demo

    spec = task_from(task)
    prefect_ready()  # the Prefect API answers within its deadline, or the temporary server has started
    run_finetune_demo(str(spec.source_path), say=typer.echo, on_step=_progress_bar())
