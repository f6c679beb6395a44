"""calscore: calibrated confidence scores from a causal LM's first-token probabilities.

Installed, the repository's folders live under this namespace: calscore.jobs, calscore.flows,
calscore.calibration_store, calscore.sql, calscore.infra; calscore.cli is the command line (the top floor).
"""
from importlib import metadata

try:
    __version__ = metadata.version("calscore")
except metadata.PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"
