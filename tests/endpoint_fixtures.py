"""A real OpenAI-compatible server for the endpoint tests, and a small fault-injecting proxy in front of it.

`LlamaServer` runs llama-cpp-python's server (installed by `make setup` in its own venv,
`.venv-llama`, or wherever CALSCORE_LLAMA_PYTHON points) on the demo model's GGUF file,
on 127.0.0.1. `FaultProxy` forwards to it and answers chosen requests itself (429 with
Retry-After, 500, 400, ...) or rewrites the served model's name, and counts what it saw.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

REPO = Path(__file__).resolve().parents[1]
ALIAS = "smollm2-135m-instruct-q4_1"
START_DEADLINE_SECONDS = 180.0  # a busy 2-core machine loads the model slowly


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def installed(path: Path, message: str) -> Path:
    """`path`, which `make setup` installs: without it a test fails under CI (where it must run) and skips elsewhere."""
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def llama_python() -> Path:
    path = Path(os.environ.get("CALSCORE_LLAMA_PYTHON") or REPO / ".venv-llama" / "bin" / "python")
    return installed(path, f"no llama-cpp-python server at {path}: run `make setup` (it builds it in .venv-llama)")


class LlamaServer:
    """One llama.cpp server process on the demo GGUF; `start`, `kill` (SIGKILL), `stop`."""

    def __init__(self, log_dir: Path, port: int | None = None, *, prompt_cache: bool = False, threads: int = 2):
        from calscore.jobs.scoring.embedded_model import gguf_path

        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log_dir = log_dir
        self.args = [str(llama_python()), "-m", "llama_cpp.server", "--model", str(gguf_path()),
                     "--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048",
                     "--n_threads", str(threads), "--n_threads_batch", str(threads),
                     # logprobs need the logits of every position; without it llama-cpp-python 0.3
                     # silently returns constant label probabilities
                     "--logits_all", "true", "--cache", "true" if prompt_cache else "false", "--verbose", "false"]
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"llama-server-{self.port}-{self.starts}.log"

    def start(self) -> "LlamaServer":
        self.starts += 1
        # unbuffered: the access log is a count the tests read while the server runs
        self.process = subprocess.Popen(self.args, stdout=self.log_path.open("w"), stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama server exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0).status_code == 200:
                    self._complete_one()
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama server not ready after {START_DEADLINE_SECONDS:.0f} s")

    def _complete_one(self) -> None:
        """One real completion: a server whose CPU kernels fault (a native build's AMX path in a VM) answers
        /models and dies on its first request; say so plainly instead of failing every test after it."""
        try:
            response = httpx.post(f"{self.base_url}/completions", timeout=START_DEADLINE_SECONDS,
                                  json={"model": ALIAS, "prompt": "Hello", "max_tokens": 1})
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise RuntimeError(
                f"the llama.cpp server answered /models but could not complete one request ({exc!r}; exit code "
                f"{self.process.poll()}): a build with CPU instructions this machine faults on? `make setup` builds it "
                f"portably (LLAMA_CMAKE_ARGS); rebuild with `rm -rf .venv-llama .cache/llama-wheels && make setup`. "
                f"Server log: {self.log_path.read_text()[-1500:]}") from exc

    def completions_served(self) -> int:
        """POST /v1/completions answered by this start of the server (its access log), the start-up check's one
        request not counted."""
        return self.log_path.read_text().count("POST /v1/completions") - 1

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class FaultProxy:
    """Forwards /v1/* to `upstream`; `inject(status, ...)` answers the next POSTs itself with those statuses."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.faults: deque[tuple[int, dict]] = deque()
        self.rename_model: str | None = None
        self.forwarded = 0
        self.injected: list[int] = []
        app = Starlette(routes=[Route("/v1/{path:path}", self._handle, methods=["GET", "POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def inject(self, status: int, retry_after: str | None = None) -> None:
        self.faults.append((status, {"Retry-After": retry_after} if retry_after else {}))

    async def _handle(self, request: Request) -> Response:
        if request.method == "POST" and self.faults:
            status, headers = self.faults.popleft()
            self.injected.append(status)
            return JSONResponse({"error": {"message": f"injected {status}"}}, status_code=status, headers=headers)
        async with httpx.AsyncClient(timeout=120.0) as client:
            upstream = await client.request(request.method, f"{self.upstream}/{request.path_params['path']}",
                                            content=await request.body(), headers={"content-type": "application/json"})
        self.forwarded += 1
        data = upstream.json()
        if self.rename_model and "model" in data:
            data["model"] = self.rename_model
        return JSONResponse(data, status_code=upstream.status_code)

    def __enter__(self) -> "FaultProxy":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fault proxy did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def endpoint_task(folder: Path, base_url: str, **model_fields) -> Path:
    """A task file scoring through the endpoint (batches in folder/batches, warehouse folder/w.duckdb)."""
    (folder / "batches").mkdir(parents=True, exist_ok=True)
    extra = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in model_fields.items())
    path = folder / "task.toml"
    path.write_text(f"""
name = "remote"
coverage_floor = 0.0

[model]
backend = "openai_compatible"
base_url = "{base_url}"
model = "{ALIAS}"
{extra}
[prompt]
template = "Review: {{text}}\\nSentiment:"

[labels]
positive = ["positive", "Positive"]
negative = ["negative", "Negative"]

[input]
location = "batches"

[warehouse]
path = "w.duckdb"
""", encoding="utf-8")
    return path


def score_and_write(spec) -> dict:
    """Score the task's one batch and write it to the warehouse, as a nightly run does."""
    from calscore.jobs.batches.files import discover
    from calscore.jobs.batches.stage import get_scorer, score_batch
    from calscore.jobs.warehouse.runs import finish_run, start_run
    from calscore.jobs.warehouse.writer import write_staged

    [ref] = discover(spec.input)
    run_id = start_run(spec.warehouse.path, spec.name, spec.task_version, "score")
    try:
        return write_staged(spec, score_batch(spec, ref, run_id, get_scorer(spec), None), run_id)
    finally:
        finish_run(spec.warehouse.path, run_id, "done")
