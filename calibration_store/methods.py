"""The calibration methods `auto` can choose from, by name, in its order of preference on ties
(simplest first). The one list of methods: `registry` adds `auto` itself, the task spec
validates `[calibration] method` against `registry.METHODS`."""
from __future__ import annotations

from calscore.calibration_store.base import BaseCalibrator
from calscore.calibration_store.beta import BetaCalibrator
from calscore.calibration_store.coverage_platt import CoveragePlattCalibrator
from calscore.calibration_store.histogram import HistogramCalibrator
from calscore.calibration_store.isotonic import IsotonicCalibrator
from calscore.calibration_store.matrix import MatrixCalibrator
from calscore.calibration_store.platt import PlattCalibrator
from calscore.calibration_store.temperature import TemperatureCalibrator
from calscore.calibration_store.vector import VectorCalibrator

CANDIDATES: dict[str, type[BaseCalibrator]] = {
    cls.method: cls
    for cls in (
        TemperatureCalibrator,
        PlattCalibrator,
        BetaCalibrator,
        VectorCalibrator,
        MatrixCalibrator,
        IsotonicCalibrator,
        HistogramCalibrator,
        CoveragePlattCalibrator,
    )
}
