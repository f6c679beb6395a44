"""Where scoring tasks run: in this process, or on a Ray cluster through prefect-ray.

`local` (the default) is a one-thread task runner: one model load per process, no extra
processes, and the writer loads a batch while the next one is scored. `ray` submits each
scoring task to a Ray cluster (`[execution] ray_address` or `--ray-address`), asking for
`num_gpus` when the model runs on CUDA and `num_cpus` otherwise; a worker process keeps its
loaded model across the tasks it runs (one load per worker and task_version), and Ray runs
a task again on another worker when its worker dies (`max_retries`). Ray workers report to
the flow's own Prefect server: its URL travels in the Ray runtime environment, so no
worker starts a temporary server of its own.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from prefect.task_runners import ThreadPoolTaskRunner

from calscore.jobs.common.errors import CalscoreError
from calscore.jobs.spec import TaskSpec


class ExecutionError(CalscoreError, ValueError):
    """The task file's [execution] cannot be used here (e.g. Ray without a Prefect server)."""


def uses_ray(spec: TaskSpec, ray_address: str | None) -> bool:
    return ray_address is not None or spec.execution.runner == "ray"


def task_runner_for(spec: TaskSpec, ray_address: str | None = None):
    """The task runner for this task's scoring tasks."""
    if not uses_ray(spec, ray_address):
        return ThreadPoolTaskRunner(max_workers=1)
    from prefect.settings import get_current_settings
    from prefect_ray.task_runners import RayTaskRunner

    api = get_current_settings().api.url
    if not api:
        raise ExecutionError(
            "scoring on Ray needs a Prefect server its workers can reach: start one (`prefect server start`) "
            "and set PREFECT_API_URL; without it every Ray worker would start a temporary server of its own")
    address = ray_address or spec.execution.ray_address
    return RayTaskRunner(address=address, init_kwargs={"runtime_env": {"env_vars": {"PREFECT_API_URL": api}}})


def resources_for(spec: TaskSpec, ray_address: str | None = None) -> AbstractContextManager:
    """The resources each scoring task asks Ray for (nothing to ask in this process)."""
    if not uses_ray(spec, ray_address):
        return nullcontext()
    from prefect_ray.context import remote_options

    execution = spec.execution
    # the driver may have no GPU while the workers do: the task file's device says where the model runs
    on_cuda = str(getattr(spec.model, "device", "cpu")).startswith("cuda")
    gpus = execution.num_gpus if execution.num_gpus is not None else (1 if on_cuda else 0)
    return remote_options(num_cpus=execution.num_cpus, num_gpus=gpus, max_retries=execution.max_retries)


def worker_identity() -> dict:
    """The Ray node and worker a task runs on (nothing outside Ray): recorded in the staged manifest."""
    import sys

    if "ray" not in sys.modules:
        return {}
    import ray

    if not ray.is_initialized():
        return {}
    context = ray.get_runtime_context()
    return {"ray_node": context.get_node_id(), "ray_worker": context.get_worker_id()}
