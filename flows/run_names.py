"""Flow runs are named for what they do: the task and the night, e.g. `demo-sentiment 2026-11-30`."""
from __future__ import annotations

from datetime import timezone

from calscore.jobs.spec import SpecError, load_spec


def run_name() -> str:
    """A flow run's name: the task and the night, e.g. `demo-sentiment 2026-11-30`: the `night` it was
    given, else the UTC date it was scheduled for."""
    from prefect.runtime import flow_run

    try:
        name = load_spec(flow_run.parameters["task_path"]).name
    except (KeyError, SpecError):
        name = "calscore"
    night = flow_run.parameters.get("night")
    return f"{name} {night or flow_run.scheduled_start_time.astimezone(timezone.utc).date()}"
