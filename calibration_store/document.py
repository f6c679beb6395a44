"""Calibrator documents: the JSON form in which a fitted calibrator is stored, reviewed and loaded.

A document is plain JSON (never pickle):

    {"schema_version": 1, "version": "<16 hex>", "task_name", "task_version",
     "method", "labels", "params", "fit_window": {"start", "end"},
     "n_labels", "heldout_metrics"}

Schema 2 adds `coverage_floor`: the champion's coverage floor decision (the floor in effect and the
labels' figures behind it, a JSON object made by `jobs.calibrators.coverage_floor`), so the floor
is hash-checked and travels with the calibrator that applies it: re-applying or rolling back to a
document applies its floor too. A document without a floor decision is written as schema 1, exactly
as before; both schemas are read.

`version` is the SHA-256 of the canonical JSON of every other field (sorted
keys, no whitespace, no NaN), so it names the content: an edited document no
longer matches its version, and loading it fails. Loading also refuses an
unknown schema and a calibrator fitted for another task_version (the raw
scores it was fitted on came from another model, prompt or label set).
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from calscore.calibration_store.base import BaseCalibrator
from calscore.calibration_store.registry import calibrator_from_dict

SCHEMA_VERSION = 2  # the newest schema; `SCHEMA_KEYS` holds every one this module reads
KEYS = frozenset(
    {
        "schema_version",
        "version",
        "task_name",
        "task_version",
        "method",
        "labels",
        "params",
        "fit_window",
        "n_labels",
        "heldout_metrics",
    }
)


FLOOR_KEY = "coverage_floor"
SCHEMA_KEYS = {1: KEYS, 2: KEYS | {FLOOR_KEY}}


class DocumentError(ValueError):
    """A calibrator document that must not be used: tampered, unknown schema, or another task_version."""


def canonical_json(obj: Any) -> str:
    """The one serialisation that is hashed: sorted keys, no whitespace, finite numbers only."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_version(doc: Mapping[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of everything in the document except `version`."""
    body = {k: v for k, v in doc.items() if k != "version"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()[:16]


def _iso_utc(value: Any, name: str) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name} must be an ISO 8601 timestamp, got {value!r}") from None
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be an ISO 8601 string or a datetime, got {value!r}")
    if value.tzinfo is None:  # naive timestamps are taken as UTC
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def _json_object(value: Any, name: str) -> dict[str, Any]:
    """A dict field as it will be hashed (through canonical JSON), refused when it is not one or not JSON-safe."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a dict")
    try:
        return json.loads(canonical_json(dict(value)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be JSON-safe (no NaN, inf or numpy objects): {exc}") from None


def build_document(
    cal: BaseCalibrator,
    task_name: str,
    task_version: str,
    fit_window: tuple[Any, Any],
    n_labels: int,
    heldout_metrics: Mapping[str, Any],
    coverage_floor: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The document of a fitted calibrator; `fit_window` = (first, last) label time it was fitted on;
    `coverage_floor` the floor decision it applies (schema 2), None for none (schema 1)."""
    for name, value in (("task_name", task_name), ("task_version", task_version)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if not isinstance(fit_window, (tuple, list)) or len(fit_window) != 2:
        raise ValueError(f"fit_window must be (start, end), got {fit_window!r}")
    start, end = _iso_utc(fit_window[0], "fit_window start"), _iso_utc(fit_window[1], "fit_window end")
    if datetime.fromisoformat(start) > datetime.fromisoformat(end):
        raise ValueError(f"fit_window starts after it ends: {start} > {end}")
    if isinstance(n_labels, bool) or not isinstance(n_labels, int) or n_labels < 1:
        raise ValueError(f"n_labels must be a positive integer, got {n_labels!r}")
    metrics_json = _json_object(heldout_metrics, "heldout_metrics")
    spec = cal.to_dict()
    doc: dict[str, Any] = {
        "schema_version": 1,
        "task_name": task_name,
        "task_version": task_version,
        "method": spec["method"],
        "labels": spec["labels"],
        "params": spec["params"],
        "fit_window": {"start": start, "end": end},
        "n_labels": n_labels,
        "heldout_metrics": metrics_json,
    }
    if coverage_floor is not None:
        return with_coverage_floor(doc, coverage_floor)
    doc["version"] = content_version(doc)
    return doc


def with_coverage_floor(doc: Mapping[str, Any], coverage_floor: Mapping[str, Any]) -> dict[str, Any]:
    """The same calibrator with a (new) coverage floor decision: a schema 2 document, so a new version."""
    floor_json = _json_object(coverage_floor, FLOOR_KEY)
    out = {k: v for k, v in doc.items() if k != "version"}
    out.update({"schema_version": 2, FLOOR_KEY: floor_json})
    out["version"] = content_version(out)
    return out


def verify_document(doc: Any) -> dict[str, Any]:
    """Parse (if a JSON string) and check schema and content hash; return the document."""
    if isinstance(doc, (str, bytes)):
        try:
            doc = json.loads(doc)
        except json.JSONDecodeError as exc:
            raise DocumentError(f"calibrator document is not valid JSON: {exc}") from None
    if not isinstance(doc, Mapping):
        raise DocumentError(f"a calibrator document is a JSON object, got {type(doc).__name__}")
    schema = doc.get("schema_version")
    keys = SCHEMA_KEYS.get(schema) if isinstance(schema, int) and not isinstance(schema, bool) else None
    if keys is None:
        raise DocumentError(
            f"unknown calibrator document schema_version {schema!r}; "
            f"this calibration_store reads schema_version {', '.join(map(str, SCHEMA_KEYS))}"
        )
    if set(doc) != keys:
        raise DocumentError(
            f"calibrator document fields differ from schema {schema}: "
            f"missing {sorted(keys - set(doc))}, unexpected {sorted(set(doc) - keys)}"
        )
    try:
        expected = content_version(doc)
    except (TypeError, ValueError) as exc:
        raise DocumentError(f"calibrator document is not canonical JSON: {exc}") from None
    if doc["version"] != expected:
        raise DocumentError(
            f"calibrator document {doc['version']!r} does not match its content (hash {expected!r}): "
            "it was edited after it was written; refusing to load it"
        )
    return dict(doc)


def load_document(doc: Any, expected_task_version: str) -> BaseCalibrator:
    """The calibrator of a verified document fitted for `expected_task_version`; DocumentError otherwise."""
    doc = verify_document(doc)
    if doc["task_version"] != expected_task_version:
        raise DocumentError(
            f"calibrator {doc['version']} was fitted for task_version {doc['task_version']!r}, "
            f"not {expected_task_version!r}: a calibrator is never applied to another task version"
        )
    try:
        return calibrator_from_dict({"method": doc["method"], "labels": doc["labels"], "params": doc["params"]})
    except ValueError as exc:
        raise DocumentError(f"calibrator document {doc['version']} holds an invalid calibrator: {exc}") from exc


def export_document(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Write a verified document as readable JSON (for review); the file loads back bit-identically."""
    doc = verify_document(doc)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, sort_keys=True, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def import_document(path: str | Path, expected_task_version: str | None = None) -> dict[str, Any]:
    """Read and verify a document file (hash, schema, a loadable calibrator, and task_version if given)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DocumentError(f"no calibrator document at {path}") from None
    doc = verify_document(text)
    load_document(doc, doc["task_version"] if expected_task_version is None else expected_task_version)
    return doc


def recipe_of(document: Mapping[str, Any]) -> str:
    """The recipe of a stored calibrator (what its out-of-fold evidence is filed under): its method, and for
    `auto` the method it chose."""
    return document["params"]["chosen"] if document["method"] == "auto" else document["method"]
