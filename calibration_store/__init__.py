"""calibration_store: calibrators for a causal LM's label log-probabilities, their metrics, and their store.

Fit and apply (logprobs: (n, K) log p(label) as the scorer stores them; y: label indices):

    from calscore.calibration_store import make_calibrator, metrics
    cal = make_calibrator("platt", labels=["positive", "negative"]).fit(logprobs, y, sample_weight=w)
    probs = cal.predict_proba(logprobs)               # (n, K), rows sum to 1
    metrics.reliability_report(probs, y, weights=w)   # ECE, MCE, NLL, Brier, AUROC, bins

For analysts -- the champion of a task version, applied to stored raw scores:

    import duckdb
    from calscore.calibration_store import apply_to_table, champion, load_document
    with duckdb.connect("var/demo/calscore.duckdb", read_only=True) as con:
        doc = champion(con, task_version)                 # verified JSON document, or None
        rows = con.sql("SELECT row_id, label_logprobs FROM predictions WHERE task_version = ?",
                       params=[task_version]).to_arrow_table()
    apply_to_table(load_document(doc, task_version), rows)   # + calibrated_label, calibrated_confidence, ...

Methods: platt, isotonic, temperature, vector, beta, histogram (scaling-binning), auto.
Calibrators are stored as JSON documents with a content-hash version, never pickled.
Depends on nothing in `jobs/` or `flows/`. scikit-learn (isotonic regression, folds, AUROC, its exception
and warning classes) is imported inside the functions that use it: importing it (and the scipy.stats it
pulls in) is ~0.4 s of CPU that every command importing this package would otherwise pay at start.
"""
from calscore.calibration_store import metrics
from calscore.calibration_store.apply import apply_to_table
from calscore.calibration_store.base import BaseCalibrator
from calscore.calibration_store.document import DocumentError, build_document, export_document, import_document, load_document
from calscore.calibration_store.evaluation import cross_fit, heldout_report
from calscore.calibration_store.champion_changes import promote, record_decision, rollback
from calscore.calibration_store.promotion import Decision, decide
from calscore.calibration_store.registry import METHODS, calibrator_from_dict, make_calibrator
from calscore.calibration_store.store import (
    champion,
    list_calibrators,
    list_events,
    load_version,
    record_event,
    save_calibrator,
    set_champion,
)

__all__ = [
    "METHODS",
    "BaseCalibrator",
    "Decision",
    "DocumentError",
    "apply_to_table",
    "build_document",
    "calibrator_from_dict",
    "champion",
    "cross_fit",
    "decide",
    "export_document",
    "heldout_report",
    "import_document",
    "list_calibrators",
    "list_events",
    "load_document",
    "load_version",
    "make_calibrator",
    "metrics",
    "promote",
    "record_decision",
    "record_event",
    "rollback",
    "save_calibrator",
    "set_champion",
]
