"""The work itself, plain Python with no Prefect import (installed as `calscore.jobs`).

Folders, lowest layer first (a module imports only its own layer and the ones below;
tests/test_layers.py checks it): `common` (clock, hashes, retry), `scoring` (the scorer
interface, its backends and the first-token engine), `spec.py` (the task file),
`decisions.py` (calibrate -> label, confidence, bucket), `batches` (input files, quarantine,
scoring one batch to a staged result), `warehouse` (DuckDB connections, migrations, ledger,
the single writer, run lock), `calibrators` (champion, recalibration, overrides), `labels`
(import, audit samples), `reports` (figures, HTML, status), `demo` (the demo's data).
"""
