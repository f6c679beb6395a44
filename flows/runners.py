"""Where scoring tasks run: in this process, or on a Ray cluster through prefect-ray.

`local` (the default) is a one-thread task runner: one model load per process, no extra
processes, and the writer loads a batch while the next one is scored. `ray` submits each
scoring task to a Ray cluster (`[execution] ray_address` or `--ray-address`), asking for
`num_gpus` when the model runs on CUDA and `num_cpus` otherwise; a worker process keeps its
loaded model across the tasks it runs (one load per worker and task_version), and Ray runs
a task again on another worker when its worker dies (`max_retries`). Ray workers report to
the flow's own Prefect server: its URL travels in the Ray runtime environment, so no
worker starts a temporary server of its own. A cluster address that does not answer within
`connect_timeout` seconds fails the run, naming it (Ray's own client retries for many minutes).
"""
from __future__ import annotations

import logging
import socket
from contextlib import AbstractContextManager, nullcontext

from prefect.task_runners import ThreadPoolTaskRunner

from calscore.jobs.common.errors import CalscoreError
from calscore.jobs.common.retry import retry_until_deadline
from calscore.jobs.spec import TaskSpec


log = logging.getLogger(__name__)


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
    reach(address, spec.execution.connect_timeout)
    return RayTaskRunner(address=address, init_kwargs={"runtime_env": {"env_vars": {"PREFECT_API_URL": api}}})


def _host_port(address: str | None) -> tuple[str, int] | None:
    """Where a Ray address listens ("host:port", "ray://host:port"); None for a local Ray or "auto" (Ray finds
    a running local cluster by its processes, or fails at once)."""
    if address in (None, "auto", "local"):
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ExecutionError(f"[execution] ray_address {address!r} is not 'auto', 'host:port' or 'ray://host:port'")
    return host.strip("[]"), int(port)


def reach(address: str | None, timeout: float) -> None:
    """The Ray cluster at `address` accepts a connection within `timeout` seconds (a head that is starting may
    refuse for a while), or ExecutionError naming it; saying every 10 s what it waits for."""
    target = _host_port(address)
    if target is None:
        return

    def say(exc: Exception, waited: float) -> None:
        log.warning("waiting for the Ray cluster at %s (%s); waited %.0f s, giving up after %.0f s",
                    address, exc, waited, timeout)

    def connect() -> None:
        socket.create_connection(target, timeout=timeout).close()

    try:
        retry_until_deadline(connect, lambda exc: isinstance(exc, OSError), timeout, first_delay=0.2, on_wait=say)
    except OSError as exc:
        raise ExecutionError(f"cannot reach the Ray cluster at {address} within {timeout:.0f} s ([execution] "
                             f"connect_timeout): {exc}") from None


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
