"""After a manual promotion the reliability diagrams draw what the headline measures: raw and the new champion on
the headline's labels, though every row is still decided raw (`calscore calibrators promote` re-applies nothing).
They used to read the labeled rows' own decisions, and drew only the raw curve under a title naming the champion
while the headline read "ECE 0.070 raw -> 0.048 calibrated"."""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from calscore.cli import app
from calscore.jobs.reports.html_report import write_report
from calscore.jobs.reports.report_data import load_report_data
from calscore.jobs.reports.report_figures import render_figures
from calscore.jobs.warehouse.connection import writer
import derived_tables
from report_fixtures import fill_report_warehouse, report_task_file
from test_reports import champion_on_labels, ref_ece_mce


@pytest.fixture()
def promoted(tmp_path):
    """The report fixture with every row decided raw and no champion, then its Platt calibrator promoted by
    hand through the command line."""
    path = tmp_path / "calscore.duckdb"
    filled = fill_report_warehouse(path)
    reapplied = ", ".join(f"reapplied_{c} = null" for c in ("calibrator_version", "label", "confidence", "bucket",
                                                            "bucket_reason", "at", "run_id", "calibrated_probs_json"))
    with writer(path) as con:
        con.execute("delete from decisions")
        con.execute("update predictions set calibrator_version = null, confidence = null, calibrated_probs = null,"
                    f" label = raw_label, bucket_basis = 'raw', {reapplied}")
        con.execute("update calibrators set status = 'candidate' where status = 'champion'")
        derived_tables.rebuild(con)
    task = report_task_file(path, tmp_path / "task.toml")
    result = CliRunner().invoke(app, ["calibrators", "promote", filled["champion"], "--task", str(task),
                                      "--reason", "reviewed the diagram"])
    assert result.exit_code == 0 and "is now the champion" in result.output, result.output
    return filled


def test_after_a_manual_promotion_the_diagrams_draw_raw_and_the_champion(promoted, tmp_path):
    data = load_report_data(promoted["spec"])
    assert not data.labeled.calibrated_labeled.any()  # every row still decided raw
    heldout = data.heldout
    assert heldout["champion"] == promoted["champion"] and heldout["calibrated"] is not None
    figures = render_figures(data, tmp_path, "r")
    # the headline's labels (the audit ones), raw and the champion's own probabilities, recomputed by hand
    r = promoted["rows"]
    m = r["is_audit_label"]
    w = r["label_weight"][m]
    raw_correct = r["raw_label"][m] == r["true_label"][m]
    conf, ok = champion_on_labels(promoted, m)
    for fig in (figures["reliability"], figures["reliability_positive"]):
        assert fig["raw"]["n"] == fig["calibrated"]["n"] == int(m.sum()) == heldout["calibrated"]["n"]
    top = figures["reliability"]
    assert top["raw"]["ece"] == pytest.approx(ref_ece_mce(r["raw_confidence"][m], raw_correct, w)[0], abs=1e-12)
    assert top["calibrated"]["ece"] == pytest.approx(ref_ece_mce(conf, ok, w)[0], abs=1e-12)
    for name in ("raw", "calibrated"):  # the diagram's ECE is the headline's
        assert top[name]["ece"] == pytest.approx(heldout[name]["ece"], abs=1e-12)
    assert np.isclose(top["calibrated"]["accuracy"], heldout["calibrated"]["accuracy"])
    page = write_report(promoted["spec"], tmp_path / "out").read_text(encoding="utf-8")
    assert f'<td class="l">calibrated</td><td>{int(m.sum())}</td>' in page
    positive = figures["reliability_positive"]
    assert (f"ECE {positive['raw']['ece']:.3f} raw, {positive['calibrated']['ece']:.3f} calibrated."
            in " ".join(page.split()))
