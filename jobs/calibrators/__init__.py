"""The task's calibrators in use: the champion a run applies (`champion`), refitting from labels
with champion/challenger and reliability snapshots (`recalibrate`), and a person's overrides (`admin`).
The calibrators themselves and their store live in `calscore.calibration_store`."""
