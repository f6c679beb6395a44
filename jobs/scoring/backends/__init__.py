"""Scoring backends, one module each; `calscore.jobs.scoring.registry` lists them by name."""
