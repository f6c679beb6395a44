"""The calibration methods by name: make one, or rebuild one from its dict."""
from __future__ import annotations

from typing import Any, Mapping

from calscore.calibration_store.auto import AutoCalibrator
from calscore.calibration_store.base import BaseCalibrator
from calscore.calibration_store.combined import CombinedCalibrator
from calscore.calibration_store.methods import CANDIDATES

# `combined` reads the sampled agreement too (calibrator_input builds its matrix)
_CLASSES: dict[str, type[BaseCalibrator]] = {**CANDIDATES, "auto": AutoCalibrator, "combined": CombinedCalibrator}
METHODS: tuple[str, ...] = tuple(_CLASSES)


def make_calibrator(method: str, labels, **params: Any) -> BaseCalibrator:
    """An unfitted calibrator: make_calibrator("platt", labels=["positive", "negative"])."""
    if method not in _CLASSES:
        raise ValueError(f"unknown calibration method {method!r}; choose one of {list(METHODS)}")
    cls = _CLASSES[method]
    unknown = sorted(set(params) - set(cls._parameter_constraints))
    if unknown:
        raise ValueError(f"{method}: unknown parameter(s) {unknown}; known: {sorted(cls._parameter_constraints)}")
    cal = cls(labels=labels, **params)
    cal._validate_params()
    return cal


def calibrator_from_dict(data: Mapping[str, Any]) -> BaseCalibrator:
    """Rebuild a fitted calibrator from its `to_dict()`; predictions are bit-identical."""
    if not isinstance(data, Mapping) or data.get("method") not in _CLASSES:
        method = data.get("method") if isinstance(data, Mapping) else None
        raise ValueError(f"not a calibrator dict: method {method!r} is not one of {list(METHODS)}")
    return _CLASSES[data["method"]].from_dict(data)
