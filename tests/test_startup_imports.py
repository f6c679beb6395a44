"""Every command starts by importing the CLI: scikit-learn and scipy.stats (~0.4 s of CPU together, a tenth of a
small command) are imported only by the functions that use them (calibration_store's docstring)."""
from __future__ import annotations

import subprocess
import sys

HEAVY = ("sklearn", "scipy.stats", "pandas")


def test_importing_the_cli_imports_no_scikit_learn_scipy_stats_or_pandas() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c",
         f"import sys, calscore.cli.app; print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout.strip()
    assert loaded == "[]", f"imported at start: {loaded}"


def test_a_function_that_needs_scikit_learn_still_gets_it() -> None:
    import numpy as np

    from calscore.calibration_store import metrics

    # top-label confidences 0.9, 0.7, 0.8 right and 0.75 wrong: two of the three right ones rank above it
    probs = np.array([[0.9, 0.1], [0.75, 0.25], [0.3, 0.7], [0.2, 0.8]])
    assert metrics.auroc(probs, np.array([0, 1, 1, 1])) == 2 / 3
