"""Endpoint responses cached on disk, so a re-run after a crash does not pay for a request twice.

    cache = ResponseCache(cache_root() / "endpoint-responses.sqlite")
    key = cache.key(url, identity, body)      # endpoint, served model identity, prompt and parameters
    cache.get(key) or cache.put(key, response)

One SQLite file (the standard library's; WAL journal, so a reader never blocks the
writer and a killed process loses at most the response it was writing). A response is
written the moment it arrives, not at the end of a batch: that is what makes the
re-run cheap. Error responses are never stored. The key includes the served model's
identity, so a server that changed its model never answers from an old model's cache.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any, Mapping

# Seconds a write waits for another process holding the file (two runs sharing a cache).
BUSY_TIMEOUT_SECONDS = 30.0


class ResponseCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                    check_same_thread=False)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, body TEXT NOT NULL)")

    @staticmethod
    def key(url: str, identity: Mapping[str, Any], body: Mapping[str, Any]) -> str:
        blob = json.dumps({"url": url, "identity": identity, "body": body}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> dict | None:
        row = self._con.execute("SELECT body FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, response: Mapping[str, Any]) -> None:
        self._con.execute("INSERT OR REPLACE INTO responses (key, body) VALUES (?, ?)", (key, json.dumps(response)))

    def __len__(self) -> int:
        return self._con.execute("SELECT count(*) FROM responses").fetchone()[0]
