"""Operations at the edges: a temporary Prefect server that takes its time says so every 10 s, an unreachable
Prefect API fails within a deadline naming it (before any flow or lock), explain and score-file refuse answer
variants that share a first token as score does, and progress is a bar on a terminal, plain lines elsewhere.
Real `calscore` processes (a pseudo-terminal for the bar), real Prefect, real DuckDB."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_processes import DEADLINE, REPO, calscore, env, finish, sigkill
from flow_fixtures import task_toml, texts, write_batch, write_lookup_scores

pytestmark = pytest.mark.minutes(3.0)


@pytest.fixture
def task(tmp_path) -> Path:
    """A lookup-backed task (no model to load) that can score every text `write_batch` makes for rows 0..399."""
    _, body, truth = texts(400)
    return task_toml(tmp_path, write_lookup_scores(tmp_path / "scores.parquet", body, truth), backend="lookup")


def timed_lines(proc: subprocess.Popen) -> list[tuple[float, str]]:
    """Every output line of the process with the monotonic time it arrived, until it exits (or DEADLINE)."""
    deadline = time.monotonic() + DEADLINE
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            return seen
        seen.append((time.monotonic(), line.rstrip("\n")))
    sigkill(proc)
    pytest.fail("the command did not end; output:\n" + "\n".join(line for _, line in seen)[-3000:])


def test_starting_the_temporary_prefect_server_says_every_10_s_what_it_waits_for(tmp_path, task, monkeypatch):
    """Without PREFECT_API_URL, `score` starts Prefect's temporary server (10-30 s here, up to 90 s) before the
    flow: it says so at once, then every 10 s how long it has waited, then when the server is ready; the flow
    reuses that server. It printed nothing of its own while it waited."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # (an empty one sends Prefect's events nowhere)
    write_batch(tmp_path, "a", 5)
    proc = calscore("score", "--task", str(task))  # env(): a fresh Prefect home each time
    lines = timed_lines(proc)
    text = [line for _, line in lines]
    assert proc.wait(timeout=30) == 0 and "Traceback" not in "\n".join(text), "\n".join(text)
    start = next(i for i, line in enumerate(text) if line.startswith("starting the temporary Prefect server"))
    ready = next(i for i, line in enumerate(text) if line.startswith("temporary Prefect server ready at "))
    flow = next(i for i, line in enumerate(text) if "Beginning flow run" in line)
    assert start < ready < flow, text
    assert "(no PREFECT_API_URL); it may take up to 90 s (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)" in text[start]
    took = int(re.search(r"after (\d+) s$", text[ready]).group(1))
    waiting = [(at, line) for at, line in lines[start:ready] if line.startswith("waiting for the temporary Prefect")]
    seconds = [int(re.fullmatch(r"waiting for the temporary Prefect server to start \((\d+) s\)", line).group(1))
               for _, line in waiting]
    assert seconds == [10 * (i + 1) for i in range(len(seconds))], text
    assert (took - 1) // 10 <= len(seconds) <= (took + 1) // 10, (took, text)  # one line per 10 s waited
    said = [lines[start][0], *(at for at, _ in waiting), lines[ready][0]]
    assert all(b - a <= 12 for a, b in zip(said, said[1:])), (said, text)  # never silent for more than 10 s
    assert sum("Starting temporary server on" in line for line in text) == 1, text  # the flow reused it


def silent_server() -> socket.socket:
    """A socket that accepts connections (the kernel completes them) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener


def test_an_unreachable_prefect_api_fails_score_within_its_deadline_naming_it(tmp_path, task):
    """PREFECT_API_URL at nothing: Prefect's client failed at once with a traceback when refused, and retried a
    silent server for minutes. Now `score` waits CALSCORE_PREFECT_CONNECT_TIMEOUT seconds at most, saying every
    10 s what it waits for, then exits 2 with one line naming the address, before any flow and the lock."""
    write_batch(tmp_path, "a", 5)
    listener = silent_server()
    silent = f"http://127.0.0.1:{listener.getsockname()[1]}/api"
    try:
        for url, timeout, reason in (("http://127.0.0.1:9/api", 3, "Connection refused"), (silent, 12, "")):
            started = time.monotonic()
            code, out = finish(calscore("score", "--task", str(task), PREFECT_API_URL=url,
                                        CALSCORE_PREFECT_CONNECT_TIMEOUT=str(timeout)))
            took = time.monotonic() - started
            assert code == 2, out
            assert "Traceback" not in out and "Beginning flow run" not in out, out
            *before, last = out.strip().splitlines()
            assert last.startswith(f"cannot reach the Prefect API at {url} (PREFECT_API_URL) within {timeout} s "
                                   "(CALSCORE_PREFECT_CONNECT_TIMEOUT): "), out
            assert reason in last and last.endswith("; nothing was run"), out
            waits = [line for line in before if line.startswith(f"waiting for the Prefect API at {url}")]
            said = [int(re.search(r"; waited (\d+) s, ", line).group(1)) for line in waits]
            assert said == [s for s in (2, 12, 22) if s < timeout], out  # after 2 s, then every 10 s
            assert all(f"giving up after {timeout} s (CALSCORE_PREFECT_CONNECT_TIMEOUT)" in line for line in waits)
            # the deadline plus the seconds a process takes to import Prefect on a busy machine; Prefect's own
            # client took up to 6 x 60 s on the silent server
            assert took < timeout + 60, took
            assert not (tmp_path / "w.duckdb").exists(), out  # no run recorded, no lock taken
    finally:
        listener.close()


def test_a_server_that_is_not_a_prefect_api_is_named_at_once(tmp_path, task):
    """Something answers at PREFECT_API_URL, with 404 on /health: waiting will not change that."""
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api"
    try:
        started = time.monotonic()
        code, out = finish(calscore("score", "--task", str(task), PREFECT_API_URL=url))
    finally:
        server.shutdown()
    assert code == 2 and "Traceback" not in out, out
    assert out.strip().startswith(f"the Prefect API at {url} (PREFECT_API_URL) does not answer as a Prefect server: "
                                  "Client error '404 Not Found'"), out
    assert time.monotonic() - started < 60 and not (tmp_path / "w.duckdb").exists()


def test_a_connect_timeout_that_is_not_a_number_is_bad_input(tmp_path, task):
    code, out = finish(calscore("score", "--task", str(task), PREFECT_API_URL="http://127.0.0.1:9/api",
                                CALSCORE_PREFECT_CONNECT_TIMEOUT="soon"))
    assert code == 2 and out.strip() == "CALSCORE_PREFECT_CONNECT_TIMEOUT='soon': not a positive number of seconds"


def test_explain_and_score_file_refuse_answers_that_share_a_first_token_as_score_does(tmp_path, tiny_model):
    """' positively' starts with the token ' positive': `score` refused it as a task-file error (exit 2, one line,
    before any flow); explain and score-file loaded the model and exited 1 with a two-line message. Now all three
    print the same line and exit 2."""
    task = task_toml(tmp_path, tiny_model)
    task.write_text(task.read_text().replace('negative = ["negative", "Negative"]', 'negative = ["positively"]'))
    batch, _ = write_batch(tmp_path, "a", 5)
    out = tmp_path / "scored.parquet"
    refusals = []
    for args in (["score"], ["explain", "a warm film"],
                 ["score-file", "--input", str(batch), "--output", str(out)]):
        done = subprocess.run([sys.executable, "-m", "calscore.cli", *args, "--task", str(task)], cwd=REPO,
                              env=env(), capture_output=True, text=True, timeout=DEADLINE)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stdout == "" and "Traceback" not in done.stderr, (args, done.stderr)
        [line] = done.stderr.splitlines()
        assert line.startswith(f"{task}: labels: cannot resolve the answer variants: token ' positive'"), line
        refusals.append(line)
    assert len(set(refusals)) == 1, refusals  # the same check, the same message
    assert not out.exists() and not (tmp_path / "w.duckdb").exists()


ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]")


def on_a_terminal(args: list[str], **variables: str) -> tuple[int, str]:
    """`calscore args` with stdin, stdout and stderr on a pseudo-terminal; its exit code and what the terminal
    showed, escape sequences removed."""
    import pty
    import select

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "calscore.cli", *args], cwd=REPO, stdin=follower,
                            stdout=follower, stderr=follower, start_new_session=True,
                            env={**env(), "TERM": "xterm-256color", "COLUMNS": "160", "DO_NOT_TRACK": "1", **variables})
    os.close(follower)
    shown, deadline = bytearray(), time.monotonic() + DEADLINE
    try:
        while time.monotonic() < deadline:
            if select.select([leader], [], [], 1.0)[0]:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: every process holding the terminal has ended
                    break
                if not chunk:
                    break
                shown += chunk
        else:
            sigkill(proc)
            pytest.fail("the command did not end; terminal:\n" + shown.decode(errors="replace")[-3000:])
    finally:
        os.close(leader)
    return proc.wait(timeout=60), ANSI.sub("", shown.decode(errors="replace")).replace("\r", "\n")


def test_a_terminal_shows_a_progress_bar_and_a_pipe_plain_lines(tmp_path, tiny_model, monkeypatch, shared_prefect_api):
    """On a terminal (stderr a tty) `calscore score` draws score-file's bar for the batch being scored, and the
    periodic progress lines stay off the console (the Prefect UI keeps them); piped, the plain lines stay."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # the temporary server
    task = task_toml(tmp_path, tiny_model)
    write_batch(tmp_path, "a", 3000)
    code, shown = on_a_terminal(["score", "--task", str(task)])
    assert code == 0, shown[-3000:]
    assert re.search(r"a\.parquet +━+.* \d+/3000 rows +[\d.]+ rows/s", shown), shown[-3000:]
    assert "batch a.parquet: 3000 scored, 0 quarantined" in shown  # the run's log lines print above the bar
    assert not re.search(r"batch a\.parquet: \d+/3000 rows", shown), shown[-3000:]
    assert "rows scored: 3000" in shown and "Traceback" not in shown, shown[-3000:]

    write_batch(tmp_path, "b", 300, start=3000)  # piped, on a running server (no temporary one to wait for)
    code, out = finish(calscore("score", "--task", str(task), PREFECT_API_URL=shared_prefect_api))
    assert code == 0 and "Traceback" not in out, out
    assert re.search(r"batch b\.parquet: 300/300 rows, [\d.]+ rows/s, ETA ", out), out
    assert "━" not in out and "\x1b[" not in out, out


def test_the_progress_display_is_chosen_by_isatty(tmp_path):
    """The choice itself: a pseudo-terminal is interactive, a pipe and a file are not."""
    import pty

    from calscore.cli.progress import interactive, scoring_progress

    leader, follower = pty.openpty()
    read, write = os.pipe()
    try:
        with open(follower, "w", closefd=False) as terminal, open(write, "w", closefd=False) as pipe, \
                open(tmp_path / "log.txt", "w") as file:
            assert interactive(terminal) and not interactive(pipe) and not interactive(file)
            for stream, bar in ((terminal, True), (pipe, False), (file, False)):
                with scoring_progress(stream) as shown:
                    assert shown is bar
    finally:
        for fd in (leader, follower, read, write):
            os.close(fd)
