"""Everything in infra/ imports and validates: the served deployments, the work-pool deployments of
prefect.yaml (entrypoints, parameters, task files), and the Ray demo task (same task_version as the demo)."""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import yaml
from prefect.flows import Flow

from calscore.jobs.spec import load_spec

REPO = Path(__file__).resolve().parents[1]


def test_served_deployments_build_for_the_demo_task():
    from calscore.infra.deployments import deployments

    built = deployments(str(REPO / "infra" / "tasks" / "demo.toml"))
    by_name = {d.name: d for d in built}
    assert {"nightly-demo-sentiment", "recalibrate-demo-sentiment"} <= set(by_name)
    assert by_name["nightly-demo-sentiment"].schedules and by_name["recalibrate-demo-sentiment"].triggers


def test_prefect_yaml_deployments_point_at_real_flows_and_task_files():
    config = yaml.safe_load((REPO / "infra" / "prefect.yaml").read_text())
    assert config["deployments"]
    for deployment in config["deployments"]:
        path, function = deployment["entrypoint"].split(":")
        module = importlib.import_module("calscore." + path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, function)
        assert isinstance(flow, Flow), deployment["entrypoint"]
        assert set(deployment["parameters"]) <= set(inspect.signature(flow.fn).parameters)
        spec = load_spec(REPO / deployment["parameters"]["task_path"])
        assert spec.execution.runner == "ray"


def test_the_ray_demo_task_is_the_demo_task_scored_elsewhere():
    demo, ray = load_spec(REPO / "infra/tasks/demo.toml"), load_spec(REPO / "infra/tasks/demo-ray.toml")
    assert ray.task_version == demo.task_version  # where scoring runs never changes the scores' version
    assert ray.execution.runner == "ray" and demo.execution.runner == "local"
