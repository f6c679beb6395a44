"""A real Label Studio server for the labeling round-trip tests.

`LabelStudioServer` runs `label-studio start` (installed by `make setup` in its own venv, `.venv-labelstudio`, or
wherever CALSCORE_LABEL_STUDIO points) on 127.0.0.1 with a temporary data folder, and creates its admin user with
a legacy API token at start, without a prompt. Nothing in it reaches for the internet: no version check, no usage
analytics, no error reports (an offline machine would wait on each).
"""
from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import httpx

from endpoint_fixtures import free_port, installed

REPO = Path(__file__).resolve().parents[1]
# A fresh database runs Label Studio's migrations first: 80-150 s measured on a busy 2-core machine (load 7-9).
START_DEADLINE_SECONDS = 600.0
ADMIN = "admin@example.com"
OFFLINE = {"LABEL_STUDIO_LATEST_VERSION_CHECK": "false", "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
           "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": ""}


def label_studio_command() -> Path:
    path = Path(os.environ.get("CALSCORE_LABEL_STUDIO") or REPO / ".venv-labelstudio" / "bin" / "label-studio")
    return installed(path, f"no Label Studio at {path}: run `make setup` (it installs it in .venv-labelstudio)")


class LabelStudioServer:
    """One Label Studio process; `start`, `stop`, and `api` (an httpx client authenticated as the admin)."""

    def __init__(self, data_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(20)
        self.data_dir = data_dir
        self.log_path = data_dir / "label-studio.log"
        self.process: subprocess.Popen | None = None
        self.api = httpx.Client(base_url=self.url, headers={"Authorization": f"Token {self.token}"}, timeout=60.0)

    def start(self) -> "LabelStudioServer":
        # the server's settings come from LABEL_STUDIO_* variables: none of the caller's may leak in
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "HEARTEX_"))}
        env.update(OFFLINE, LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [str(label_studio_command()), "start", "--no-browser", "--internal-host", "127.0.0.1",
             "--port", str(self.port), "--data-dir", str(self.data_dir), "--username", ADMIN,
             "--password", secrets.token_hex(12), "--user-token", self.token, "--enable-legacy-api-token"],
            stdout=self.log_path.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Label Studio exited with {self.process.returncode}: "
                                   f"{self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"Label Studio did not answer {self.url}/health within {START_DEADLINE_SECONDS:.0f} s "
                           f"(migrating a fresh database on a busy machine?); log: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        self.api.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
