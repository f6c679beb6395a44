"""Flow runs are named for what they do: the task and the night, e.g. `demo-sentiment 2026-11-30`."""
from __future__ import annotations

from calscore.jobs.common.clock import utcnow
from calscore.jobs.spec import SpecError, load_spec


def run_name() -> str:
    """A flow run's name: the task and the night, e.g. `demo-sentiment 2026-11-30`."""
    from prefect.runtime import flow_run

    try:
        name = load_spec(flow_run.parameters["task_path"]).name
    except (KeyError, SpecError):
        name = "calscore"
    return f"{name} {utcnow():%Y-%m-%d}"
