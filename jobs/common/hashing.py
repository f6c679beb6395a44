"""Content hashes of files (batches, model weights), cached per process by size and mtime."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=8)
def file_sha256(path: Path, size: int, mtime_ns: int) -> str:
    """Content hash of a file; size and mtime key the in-process cache."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_of(path: Path) -> str:
    st = path.stat()
    return file_sha256(path, st.st_size, st.st_mtime_ns)
