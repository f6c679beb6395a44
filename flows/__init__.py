"""Prefect flows: thin orchestration of `calscore.jobs` (nightly scoring and rescore, label ingestion,
recalibration, the demo story). Tasks take paths and ids, never models or tables."""
