"""The analysts' read copy: the warehouse file copied beside it after every run that writes, for sessions that
stay open.

DuckDB locks a file against writers while any process reads it, so a notebook or BI tool that keeps its
session on the warehouse all day would make the night wait and fail. Analysts open the read copy instead
(`calscore-read.duckdb` beside `calscore.duckdb`, `read_copy_path`): the writer never opens it, and publishing
a new one is a file copy to a temporary name and an atomic rename over the old one, so a session that has the
old copy open keeps reading the snapshot it opened (the rename leaves its file alone) and the next session
sees the new one. The copy is taken under a read-only connection on the warehouse, which holds every writer
off for the seconds the bytes take to copy, so it is never torn. It is at most one run old, and it is in the
storage format the DuckDB CLI reads (`connection.STORAGE_VERSION`), views included.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from calscore.jobs.warehouse.connection import reader

log = logging.getLogger(__name__)


def read_copy_path(warehouse: Path) -> Path:
    """Where the read copy of a warehouse lives: `<name>-read<suffix>` beside it."""
    warehouse = Path(warehouse)
    return warehouse.with_name(f"{warehouse.stem}-read{warehouse.suffix}")


def publish_read_copy(warehouse: Path) -> Path | None:
    """Copy the warehouse to its read copy, atomically; None (and a log line) when it cannot be copied whole now
    (no warehouse yet, or a write-ahead log a crashed writer left, which the next writer folds in)."""
    warehouse = Path(warehouse)
    target = read_copy_path(warehouse)
    wal = warehouse.with_name(warehouse.name + ".wal")
    if not warehouse.exists():
        return None
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with reader(warehouse):  # holds writers off while the bytes are copied
        if wal.exists():
            log.warning("read copy of %s not refreshed: it has a write-ahead log the next writer will fold in", warehouse)
            return None
        shutil.copyfile(warehouse, staging)
    os.replace(staging, target)
    return target
