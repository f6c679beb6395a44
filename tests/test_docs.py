"""The documentation site cannot drift from the code: `mkdocs build --strict` passes (no broken link or anchor,
every page in the navigation, the generated CLI reference covers every command), every example on its pages runs
(Sybil: Python blocks, doctests, bash blocks, task-file TOML), the README's links resolve, and its quickstart is
what the Makefile and CI run."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import typer
from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

from calscore.jobs.spec import TaskSpec
from doc_pages import DOCS, README, REPO, cli_reference, site_pages
from report_fixtures import fill_report_warehouse


def test_the_site_builds_strictly_with_a_reference_section_per_command(tmp_path):
    from calscore.cli import app

    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml"),
                           "--site-dir", str(site)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-6000:]
    reference = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    paths = cli_reference.command_paths(typer.main.get_command(app))
    missing = [" ".join(p) for p in paths if f'id="{"-".join(("calscore", *p))}"' not in reference]
    assert not missing, f"the CLI reference has no section for: {missing}"
    assert "Usage: calscore labels import [OPTIONS] [file]" in reference  # the help as printed, under its own name


# --- the pages' examples -----------------------------------------------------------------------------------------
def run_in_bash(example) -> str | None:
    """A ```bash block runs as written, in the scratch checkout (the test's working directory)."""
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", example.parsed], capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        return f"exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-4000:]}"
    return None


DEMO_TASK = tomllib.loads((REPO / "infra" / "tasks" / "demo.toml").read_text(encoding="utf-8"))


def validate_task_sections(example) -> None:
    """A ```toml block is part of a task file: its sections, in place of the demo task's, must validate."""
    TaskSpec.model_validate({**DEMO_TASK, **tomllib.loads(example.parsed)})


SKIP = SkipParser()
SYBIL = Sybil(parsers=[SKIP, PythonCodeBlockParser(), CodeBlockParser("bash", run_in_bash),
                       CodeBlockParser("toml", validate_task_sections)])


def _examples() -> list[tuple]:
    """(example, the skip directives right before it) for every example of every page, in page order."""
    out = []
    for page in site_pages():
        directives = []
        for example in SYBIL.parse(page):
            if example.region.evaluator is SKIP.skipper:
                directives.append(example)
            else:
                out.append(pytest.param(example, tuple(directives),
                                        id=f"{Path(example.path).relative_to(DOCS)}:{example.line}"))
                directives = []
    return out


@pytest.fixture(scope="module")
def scratch_checkout(tmp_path_factory) -> Path:
    """What a checkout looks like after `make demo`, with the report tests' small seeded warehouse as the demo's."""
    root = tmp_path_factory.mktemp("checkout")
    (root / ".venv").symlink_to(sys.prefix)
    for folder in ("sql", "infra"):
        (root / folder).symlink_to(REPO / folder)
    from calscore.jobs.warehouse.read_copy import publish_read_copy

    warehouse = root / "var" / "demo" / "calscore.duckdb"
    warehouse.parent.mkdir(parents=True)
    fill_report_warehouse(warehouse)
    publish_read_copy(warehouse)
    return root


@pytest.mark.parametrize(("example", "directives"), _examples())
def test_every_example_on_the_pages_runs(example, directives, scratch_checkout, monkeypatch):
    monkeypatch.chdir(scratch_checkout)
    monkeypatch.setenv("PATH", f"{scratch_checkout / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    for directive in directives:
        directive.evaluate()
    example.evaluate()


def test_the_examples_were_found():
    """Each kind of example the pages hold is collected (a parser that silently found nothing would pass)."""
    evaluators = {param.values[0].region.evaluator for param in _examples()}
    kinds = {getattr(e, "__name__", type(e).__name__) for e in evaluators}
    assert kinds == {"PythonEvaluator", "DocTestEvaluator", "run_in_bash", "validate_task_sections"}, kinds


# --- the README, the site's front page ---------------------------------------------------------------------------
def test_every_link_of_the_readme_resolves():
    targets = re.findall(r"\]\(([^)\s]+)\)", README.read_text(encoding="utf-8"))
    local = [t.split("#", 1)[0] for t in targets if "://" not in t]
    assert local and all((REPO / t).exists() for t in local), [t for t in local if not (REPO / t).exists()]


def test_the_readme_quickstart_is_what_make_and_ci_run():
    """The two commands as written are Makefile targets (a dry run resolves them), and CI runs the second."""
    block = re.search(r"## Quickstart\n.*?```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S).group(1)
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    assert commands == ["make demo", "make test"]
    for command in commands:
        subprocess.run([*command.split(), "--dry-run"], cwd=REPO, check=True, capture_output=True, timeout=60)
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
