"""Label commands for Label Studio: push rows to label into a project, pull the annotations back as labels."""
from __future__ import annotations

from pathlib import Path

import typer

from calscore.cli.app import TaskOption, fail, labels_app, task_from

UrlOption = typer.Option(None, "--url", help="The Label Studio server (default: the task file's label_studio.url, "
                         "else $LABEL_STUDIO_URL). The API token comes only from the environment: "
                         "$LABEL_STUDIO_API_KEY, or the variable label_studio.api_key_env names.")
ProjectOption = typer.Option(None, "--project", help="A project's title (push creates it when missing) or id "
                             "(default: the task file's label_studio.project, else the task's name).")


@labels_app.command("push")
def labels_push(
    task: Path = TaskOption,
    audit: int = typer.Option(None, "--audit", min=1, help="Draw an audit sample of N rows now (as `labels sample` "
                              "does) and push it."),
    sample_id: str = typer.Option(None, "--sample-id", help="Push an audit sample drawn earlier; also finishes a push "
                                  "that stopped half-way."),
    review: int = typer.Option(None, "--review", min=1, help="Push the first N rows of the review queue that the "
                               "project does not have yet (convenience labels: they never certify)."),
    seed: int = typer.Option(None, help="Random seed of --audit (for a reproducible sample)."),
    url: str = UrlOption,
    project: str = ProjectOption,
) -> None:
    """Send rows to label to a Label Studio project, one task per row with the model's prediction.

    The project is created when missing, with a labeling config that offers the task's labels. Each
    task holds the row's text and id; the model's decision (label and confidence, calibrated when a
    champion decided it) is its prediction. An audit sample's inclusion probabilities stay in the
    warehouse. Rows the project already has are not sent again.

    Example: calscore labels push --task infra/tasks/demo.toml --audit 200 --seed 1

    Example: calscore labels push --task infra/tasks/demo.toml --review 50
    """
    spec = task_from(task)
    if sum(choice is not None for choice in (audit, sample_id, review)) != 1:
        fail("give exactly one of --audit N, --sample-id ID or --review N", 2)
    from calscore.jobs.labels.label_studio import connection
    from calscore.jobs.labels.round_trip import push

    try:
        lines = push(spec, connection(spec, url, project), audit=audit, seed=seed, sample_id=sample_id, review=review)
    except ValueError as exc:  # nothing to sample, no such sample, a project that cannot give the task's labels
        fail(str(exc), 2)
    typer.echo("\n".join(lines))


@labels_app.command("pull")
def labels_pull(
    task: Path = TaskOption,
    url: str = UrlOption,
    project: str = ProjectOption,
    no_trigger: bool = typer.Option(False, "--no-trigger", help="Do not start a recalibration even if enough labels "
                                    "arrived."),
) -> None:
    """Import a Label Studio project's annotations as labels; may start a recalibration by itself.

    Each task's newest submitted annotation becomes its row's label, with its design (audit, with
    the inclusion probability of the sample it was pushed from; or convenience, from the review
    queue) and its annotator as the label's source. A second pull imports nothing new; a changed
    annotation corrects the label, and the old one stays as history. Like `labels import`, a pull
    that brings the labels new since the last fit to calibration.refit_after_new_labels (task file)
    starts a recalibration; --no-trigger prevents it.

    Example: calscore labels pull --task infra/tasks/demo.toml
    """
    spec = task_from(task)
    from calscore.cli.calibrators import recalibrate_task
    from calscore.jobs.labels.label_studio import connection
    from calscore.jobs.labels.round_trip import pull

    result = pull(spec, connection(spec, url, project), trigger=not no_trigger)
    if result["new_labels"] is not None:
        result["recalibration"] = recalibrate_task(spec)["decision"]
    typer.echo("\n".join(result["report"]))
    if result["recalibration"]:
        typer.echo(f"recalibration started by this pull: {result['recalibration']}")
