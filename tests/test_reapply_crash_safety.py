"""A new champion's re-application is exactly once under SIGKILL at random points: promoted, then re-applied in
chunks that each commit on their own; killed anywhere (before the promotion commits, inside a chunk, between
chunks), a re-run finishes the job and every row of the window ends decided by the champion exactly once."""
from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

import derived_tables
from cli_processes import DEADLINE, REPO, env, finish, sigkill

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from synthetic_warehouse import build_warehouse  # noqa: E402  (bench/ is not a package)

ROWS = 3_000
CHUNK = 250

# What a promoting recalibration does, then its re-run: a run that finds its champion already promoted (no label
# changed) only continues the unfinished job, as `recalibrate` does first thing.
PROMOTE_AND_REAPPLY = f"""
import sys
from datetime import datetime, timezone
import numpy as np
from calscore.calibration_store.document import build_document
from calscore.calibration_store.registry import make_calibrator
from calscore.calibration_store.store import champion, save_calibrator, set_champion
from calscore.jobs.calibrators import reapply
from calscore.jobs.spec import load_spec
from calscore.jobs.warehouse.connection import writer

reapply.REAPPLY_CHUNK_ROWS = {CHUNK}
spec = load_spec(sys.argv[1])
x = np.array([[-0.3, -2.0], [-2.0, -0.3], [-0.3, -2.0]] * 7)
cal = make_calibrator("temperature", ["positive", "negative"]).fit(x, np.array([0, 1, 1] * 7))
at = datetime(2026, 1, 1, tzinfo=timezone.utc)
doc = build_document(cal, spec.name, spec.task_version, (at, at), 21, {{"n": 21}})
with writer(spec.warehouse.path) as con:
    current = champion(con, spec.task_version)
    if current is None or current["version"] != doc["version"]:
        con.execute("BEGIN TRANSACTION")
        version = save_calibrator(con, doc, actor="test")
        set_champion(con, version, actor="test")
        reapply.queue_reapplication(con, spec, version, "run-promote")
        con.execute("COMMIT")
        print("promoted", doc["version"], flush=True)
reapply.continue_reapplications(spec, say=lambda line: print(line, flush=True))
print("finished", flush=True)
"""


def run(task: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PROMOTE_AND_REAPPLY, str(task)], cwd=REPO, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def kill_after(proc: subprocess.Popen, lines: int, pause: float) -> list[str]:
    """SIGKILL once `lines` lines were printed (0: at once), after `pause` seconds more; the lines seen."""
    seen: list[str] = []
    deadline = time.monotonic() + DEADLINE
    while len(seen) < lines and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
    time.sleep(pause)
    sigkill(proc)
    return seen


# lines printed before the kill: none (the promotion may not have committed), the promotion's, a few chunks',
# all but the last chunk's; then a random pause, so the kill lands inside a chunk or between two
@pytest.mark.parametrize("lines", [0, 1, 5, ROWS // CHUNK])
def test_sigkill_at_a_random_point_then_a_rerun_decides_every_row_once(tmp_path, lines):
    spec = build_warehouse(tmp_path, ROWS)
    task = tmp_path / "task.toml"
    task.write_text(re.sub(r"reapply_days = \d+", "reapply_days = 100000", task.read_text()))
    seen = kill_after(run(task), lines, random.Random(lines).uniform(0.0, 0.4))
    code, out = finish(run(task))
    assert code == 0 and "finished" in out, "".join(seen) + out
    with duckdb.connect(str(spec.warehouse.path), read_only=True) as con:
        [(version,)] = con.execute("select version from calibrators where status = 'champion'").fetchall()
        per_row = con.execute("select count(*), count(distinct row_id) from decisions where calibrator_version = ?",
                              [version]).fetchall()
        current = con.execute("select count(*) filter (calibrator_version = ?), count(*) from current_decisions",
                              [version]).fetchall()
        jobs = con.execute("select status, rows_done from reapplications").fetchall()
    assert per_row == [(ROWS, ROWS)], (seen, out)  # each row decided by the champion exactly once
    assert current == [(ROWS, ROWS)]
    assert jobs == [("done", ROWS)]
    # the counts moved and the labeled rows' copies replaced with each chunk, exactly once (migration 016)
    assert derived_tables.differences(spec.warehouse.path) == []


def test_status_says_a_killed_re_application_is_not_finished_until_a_rerun_finishes_it(tmp_path):
    from calscore.jobs.reports.status import task_status

    spec = build_warehouse(tmp_path, ROWS)
    task = tmp_path / "task.toml"
    task.write_text(re.sub(r"reapply_days = \d+", "reapply_days = 100000", task.read_text()))
    seen = kill_after(run(task), 3, 0.0)  # the promotion and two chunks committed
    assert seen[0].startswith("promoted") and "re-applied" in seen[2]
    assert "row(s) re-decided, not finished" in task_status(spec)
    assert finish(run(task))[0] == 0
    assert "not finished" not in task_status(spec)
