"""calibration_store: calibrators for a causal LM's label log-probabilities, their metrics, and their store.

    from calibration_store import make_calibrator, load_champion, apply_to_table
    cal = make_calibrator("platt", labels=["positive", "negative"]).fit(logprobs, y)
    cal.predict_proba(logprobs)            # (n, K) calibrated probabilities

Depends on nothing in `jobs/` or `flows/`.
"""
from calibration_store import metrics
from calibration_store.apply import apply_to_table
from calibration_store.base import BaseCalibrator
from calibration_store.document import DocumentError, build_document, export_document, import_document, load_document
from calibration_store.evaluation import cross_fit, heldout_report
from calibration_store.promotion import Decision, decide, promote, record_decision, rollback
from calibration_store.registry import METHODS, calibrator_from_dict, make_calibrator
from calibration_store.store import (
    champion,
    list_calibrators,
    list_events,
    load_champion,
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
    "load_champion",
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
