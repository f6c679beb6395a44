"""`calscore demo`, the quickstart's main command, end to end: two nights, an audit import that
recalibrates, the evaluation on night 2's hidden labels and the report. The demo's own task file
with the tiny model in place of the demo model, so the story runs in seconds."""
from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[1]


def demo_task(folder: Path, model: Path) -> Path:
    text = (REPO / "infra" / "tasks" / "demo.toml").read_text()
    text = text.replace('embedded = "smollm2-135m-instruct"', f'path = "{model}"')
    text = text.replace("../../var/demo/", "")
    assert f'path = "{model}"' in text and 'location = "batches"' in text
    path = folder / "demo.toml"
    path.write_text(text)
    return path


@pytest.mark.usefixtures("prefect_harness")
def test_the_demo_tells_its_story_end_to_end(tmp_path, tiny_model):
    from calscore.flows.demo import run_demo

    said: list[str] = []
    story = run_demo(str(demo_task(tmp_path, tiny_model)), say=said.append)

    printed = "\n".join(said)
    assert "== night 1" in printed and "== night 2" in printed
    assert "raw scores:  accuracy" in printed and "make finetune-demo" in printed  # held-out figures, the next step
    assert story["night1"]["rows_scored"] == story["night2"]["rows_scored"] == 1000
    assert story["evaluation"]["n"] == 1000
    assert Path(story["report"]).exists()
    with duckdb.connect(str(tmp_path / "calscore.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT row_id) FROM predictions").fetchall() == [(2000, 2000)]
        assert con.execute("SELECT count(*) FROM labels").fetchall() == [(1600,)]
        # two runs minutes apart are two nights (their logical dates: yesterday's and today's)
        nights = con.execute("SELECT night, count(*) FROM current_decisions GROUP BY night ORDER BY night").fetchall()
    assert [n for _, n in nights] == [1000, 1000] and (nights[1][0] - nights[0][0]).days == 1
