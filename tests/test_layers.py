"""Imports point one way: every module may import only its own layer and the layers below it.

Lowest first: calibration_store (stands alone) < jobs.common < jobs.scoring < jobs.spec <
jobs.decisions < jobs.batches < jobs.warehouse < jobs.calibrators < jobs.labels < jobs.reports <
jobs.demo < flows < infra < calscore.cli. Imports inside functions count; imports under
`if TYPE_CHECKING:` (annotations only) do not. No module-level import cycles either.
"""
from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# repo folder -> installed package (see [tool.setuptools] package-dir in pyproject.toml)
FOLDERS = {"calscore": "calscore", "jobs": "calscore.jobs", "flows": "calscore.flows",
           "calibration_store": "calscore.calibration_store", "sql": "calscore.sql", "infra": "calscore.infra"}
LAYERS = [
    "calscore.calibration_store",
    "calscore.jobs.common",
    "calscore.jobs.scoring",
    "calscore.jobs.spec",
    "calscore.jobs.decisions",
    "calscore.jobs.batches",
    "calscore.jobs.warehouse",
    "calscore.jobs.calibrators",
    "calscore.jobs.labels",
    "calscore.jobs.finetune",
    "calscore.jobs.reports",
    "calscore.jobs.demo",
    "calscore.flows",
    "calscore.infra",
    "calscore.cli",
]
# Package markers and data that import nothing: allowed anywhere, from anywhere.
NEUTRAL = {"calscore", "calscore.jobs", "calscore.sql"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    name = ".".join((FOLDERS[parts[0]], *parts[1:]))
    return name.removesuffix(".__init__")


def source_modules() -> dict[str, Path]:
    return {module_name(p): p for folder in FOLDERS for p in sorted((REPO / folder).rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module) of every import, relative ones resolved, TYPE_CHECKING blocks skipped."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if _is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import module` depends on pkg.module; `from module import name` on module
            found.append((node.lineno, target))
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def layer_of(module: str) -> int | None:
    matches = [i for i, prefix in enumerate(LAYERS) if module == prefix or module.startswith(prefix + ".")]
    return max(matches, key=lambda i: len(LAYERS[i])) if matches else None


def internal_imports(modules: dict[str, Path]) -> dict[str, list[tuple[int, str]]]:
    """Each module's imports of other calscore modules (only names that are modules)."""
    out = {}
    for name, path in modules.items():
        seen = imports_of(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
        submodules = {(line, t.rsplit(".", 1)[0]) for line, t in seen if t in modules and "." in t}
        out[name] = [(line, target) for line, target in seen
                     if target in modules and target != name and (line, target) not in submodules]
    return out


def test_every_module_sits_in_a_layer():
    unplaced = [m for m in source_modules() if m not in NEUTRAL and layer_of(m) is None]
    assert not unplaced, f"add these to LAYERS (or NEUTRAL): {unplaced}"


def test_imports_never_point_up():
    modules = source_modules()
    upward = [
        f"{modules[name].relative_to(REPO)}:{line} ({LAYERS[layer_of(name)]}) imports {target} ({LAYERS[layer_of(target)]})"
        for name, found in internal_imports(modules).items()
        for line, target in found
        if name not in NEUTRAL and target not in NEUTRAL and layer_of(target) > layer_of(name)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph = {name: {t for _, t in found} for name, found in internal_imports(source_modules()).items()}
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_nothing_imports_the_bare_folder_names():
    """Installed, the folders live under `calscore.`; `import jobs` would find another project's package."""
    bare = {"jobs", "flows", "infra", "calibration_store", "sql"}
    files = [p for folder in (*FOLDERS, "tests", "bench") for p in sorted((REPO / folder).rglob("*.py"))]
    offending = [
        f"{p.relative_to(REPO)}:{line} imports {target}"
        for p in files
        for line, target in imports_of(p.read_text(encoding="utf-8"), "x")
        if target.split(".")[0] in bare
    ]
    assert not offending, "\n".join(offending)


def test_the_checks_see_every_import_form():
    source = (
        "import numpy\n"
        "from calscore.flows.nightly import nightly_scoring\n"
        "from . import base\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from calscore.cli import app\n"
        "def f():\n"
        "    import calscore.jobs.warehouse.connection as c\n"
    )
    found = imports_of(source, "calscore.jobs.scoring.engine.first_token")
    targets = {t for _, t in found}
    assert {"numpy", "calscore.flows.nightly", "calscore.jobs.scoring.engine.base",
            "calscore.jobs.warehouse.connection"} <= targets
    assert "calscore.cli" not in targets
    assert layer_of("calscore.flows.nightly") > layer_of("calscore.jobs.scoring.engine.first_token")
    assert layer_of("calscore.jobs.scoring.engine.first_token") == LAYERS.index("calscore.jobs.scoring")


def test_jobs_and_calibration_store_never_import_prefect():
    """The README's promise: the work in jobs/ runs without Prefect (a function call scores a batch)."""
    modules = source_modules()
    offending = [
        f"{path.relative_to(REPO)}:{line} imports {target}"
        for name, path in modules.items()
        if name.startswith(("calscore.jobs", "calscore.calibration_store"))
        for line, target in imports_of(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
        if target.split(".")[0] == "prefect"
    ]
    assert not offending, "\n".join(offending)
