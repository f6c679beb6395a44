"""Before a command runs a Prefect flow: the Prefect API it will talk to answers, or the command says why not.

- A configured API (PREFECT_API_URL: a `prefect server start`, `calscore serve`'s server) must answer
  its /health within CALSCORE_PREFECT_CONNECT_TIMEOUT seconds (default 30): until then the command says
  what it waits for after 2 s, then every 10 s; after it, one line naming the address and exit 2, before
  any flow runs and before a run takes the warehouse lock. Prefect's own client gave up at once on a refused
  connection (with a traceback) and retried a silent one for minutes (60 s a request, 5 retries).
- Without one, Prefect starts a temporary server (its database migrated on the first start: 10-30 s,
  up to PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS). The command starts it before the flow,
  saying so, then every 10 s how long it has waited, then when it is ready; the flow reuses it.
"""
from __future__ import annotations

import contextvars
import os
import threading
import time
from typing import Callable

import typer

CONNECT_TIMEOUT_ENV = "CALSCORE_PREFECT_CONNECT_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT = 30.0  # seconds
SAY_AFTER = 2.0  # seconds: a wait for the API says what it waits for after this, as every wait of calscore
SAY_EVERY = 10.0  # seconds between the lines that say what is waited for
_ATTEMPT_TIMEOUT = 10.0  # seconds one /health request may take (less when the deadline is nearer)


def say(line: str) -> None:
    typer.echo(line, err=True)


def connect_timeout() -> float:
    """CALSCORE_PREFECT_CONNECT_TIMEOUT in seconds (default 30); a value that is not a positive number exits 2."""
    from calscore.cli.app import EXIT_BAD_INPUT, fail

    raw = os.environ.get(CONNECT_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_CONNECT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        fail(f"{CONNECT_TIMEOUT_ENV}={raw!r}: not a positive number of seconds", EXIT_BAD_INPUT)
    return value


def _wait_saying(work: Callable[[], object], waiting: Callable[[float], str], deadline: float | None,
                 first: float = SAY_EVERY):
    """Run `work` in a background thread; print `waiting(seconds waited)` after `first` seconds, then every
    SAY_EVERY seconds, until it ends. Returns (done, its result) or raises the error it raised; done is False
    when `deadline` seconds passed first (the thread is a daemon: it never holds the process up)."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome.append((False, exc))

    context = contextvars.copy_context()  # Prefect's settings (a test harness's API URL) live in a context variable
    thread = threading.Thread(target=context.run, args=(run,), name="calscore-wait", daemon=True)
    started, say_at = time.monotonic(), first
    thread.start()
    while True:
        waited = time.monotonic() - started
        until = say_at if deadline is None else min(say_at, deadline)
        thread.join(max(until - waited, 0))
        if outcome:
            ok, value = outcome[0]
            if not ok:
                raise value
            return True, value
        waited = time.monotonic() - started
        if deadline is not None and waited >= deadline:
            return False, None
        if waited >= say_at:
            say(waiting(say_at))
            say_at += SAY_EVERY


def _check_api(api: str, timeout: float) -> None:
    """The configured API answers /health within `timeout` seconds, or exit 2 naming it."""
    import httpx
    from prefect._internal.urls import strip_auth_from_url
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    from calscore.cli.app import EXIT_BAD_INPUT, fail

    address = strip_auth_from_url(api)
    started = time.monotonic()
    last: list[BaseException] = []
    stop = threading.Event()

    def health() -> None:
        while not stop.is_set():
            left = timeout - (time.monotonic() - started)
            with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}):  # this loop retries, within the deadline
                client = get_client(sync_client=True, httpx_settings={"timeout": max(min(left, _ATTEMPT_TIMEOUT), 0.1)})
                with client:
                    error = client.api_healthcheck()
            if error is None:
                return
            if not isinstance(error, httpx.TransportError):  # it answered, wrongly: waiting will not change that
                raise error
            last[:] = [error]
            stop.wait(min(1.0, max(timeout - (time.monotonic() - started), 0)))

    def reason(error: BaseException | None) -> str:
        text = " ".join(str(error or "no answer").split()) or type(error).__name__
        return text if len(text) <= 300 else text[:300] + "..."

    try:
        done, _ = _wait_saying(
            health,
            lambda waited: (f"waiting for the Prefect API at {address} (PREFECT_API_URL) to answer "
                            f"({reason(last[0] if last else None)}); waited {waited:.0f} s, giving up after "
                            f"{timeout:g} s ({CONNECT_TIMEOUT_ENV})"),
            timeout, first=SAY_AFTER)
    except Exception as exc:  # noqa: BLE001 - an answer that is not a healthy one
        fail(f"the Prefect API at {address} (PREFECT_API_URL) does not answer as a Prefect server: {reason(exc)}",
             EXIT_BAD_INPUT)
    stop.set()
    if not done:
        fail(f"cannot reach the Prefect API at {address} (PREFECT_API_URL) within {timeout:g} s "
             f"({CONNECT_TIMEOUT_ENV}): {reason(last[0] if last else None)}; nothing was run", EXIT_BAD_INPUT)


def _start_temporary_server() -> None:
    """Start Prefect's temporary server now (the flow's client reuses it), saying every 10 s that it waits."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    from calscore.cli.app import fail

    limit = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    say(f"starting the temporary Prefect server (no PREFECT_API_URL); it may take up to {limit} s "
        "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)")
    started = time.monotonic()
    server = SubprocessASGIServer()
    try:
        _wait_saying(server.start,
                     lambda waited: f"waiting for the temporary Prefect server to start ({waited:.0f} s)", None)
    except Exception as exc:  # noqa: BLE001 - Prefect's own timeout, an exited server
        fail(f"the temporary Prefect server did not start: {' '.join(str(exc).split())[:500]}")
    say(f"temporary Prefect server ready at {server.api_url} after {time.monotonic() - started:.0f} s")


def prefect_ready() -> None:
    """Before a flow: the configured Prefect API answers, or the temporary server is started (module docstring).
    Exits 2 when the configured API does not answer within CALSCORE_PREFECT_CONNECT_TIMEOUT seconds."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url:
        _check_api(settings.api.url, connect_timeout())
    elif settings.server.ephemeral.enabled:
        _start_temporary_server()
