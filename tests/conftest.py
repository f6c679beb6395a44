"""Shared test setup: offline environment, a per-session Prefect home, and common fixtures."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _default_env() -> None:
    """Set (only where unset) what every test run needs: offline caches and a throwaway Prefect home."""
    os.environ.setdefault("CALSCORE_CACHE", str(REPO / ".cache" / "calscore"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    if "PREFECT_HOME" not in os.environ:
        home = tempfile.mkdtemp(prefix="calscore-prefect-")
        atexit.register(shutil.rmtree, home, ignore_errors=True)
        os.environ["PREFECT_HOME"] = home
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # set by pytest-xdist before this import
    if worker:
        # Workers sharing one Prefect home would share its SQLite database and profiles.
        home = Path(os.environ["PREFECT_HOME"]) / worker
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home)


_default_env()  # at import: before any test module imports prefect or transformers


def pytest_collection_modifyitems(items) -> None:
    """The files marked `minutes` first, longest first: `make test` hands whole files to two workers in this
    order, so the long ones start early and the workers finish together."""
    def minutes(item) -> float:
        mark = item.get_closest_marker("minutes")
        return mark.args[0] if mark else 0.0

    items.sort(key=lambda item: -minutes(item))  # stable: files and tests otherwise keep their order


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the checkout (real third-party data; see its README)."""
    folder = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not folder.is_dir():
        pytest.skip("../shared/data is not beside this checkout (a user's clone has none)")
    return folder


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    """The prepared SmolLM2 demo model folder (prepared on first use, ~30 s)."""
    from calscore.jobs.scoring.embedded_model import ensure_demo_model

    return ensure_demo_model()


@pytest.fixture
def empty_warehouse(tmp_path) -> Path:
    """A warehouse file with every migration applied and nothing in it."""
    from calscore.jobs.warehouse.connection import writer

    path = tmp_path / "w.duckdb"
    with writer(path):
        pass
    return path


@pytest.fixture(scope="session")
def prefect_harness():
    """Real Prefect against a temporary server and database, once per session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Llama with a tokenizer trained on the fly, saved like a real checkpoint."""
    from tiny_models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), arch="llama")


@pytest.fixture(scope="session")
def shared_prefect_api(tmp_path_factory) -> str:
    """The PREFECT_API_URL of one real Prefect server for the session. A `calscore` process started without one
    starts Prefect's temporary server first (10-30 s, more on a busy machine): tests whose claim is about the
    warehouse (exactly once after a crash, concurrent runs) point their processes here instead. Tests about the
    temporary server itself, and those reading flow runs or events back, keep a server of their own."""
    from cli_processes import prefect_server

    with prefect_server(tmp_path_factory.mktemp("shared-prefect-server")) as environment:
        yield environment["PREFECT_API_URL"]
