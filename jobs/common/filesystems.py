"""Locations that are local paths or URIs, through `pyarrow.fs`.

Input batches and staged results may live on this machine (a path, or `file://`), on a
shared filesystem, or in an object store that `pyarrow.fs` resolves (`s3://`, `gs://`,
...): scoring workers on other machines then read and write where the single writer can.
"""
from __future__ import annotations

import hashlib
import posixpath
from typing import Iterator

import pyarrow.fs as pafs

_BLOCK = 1 << 22


def is_uri(location: str) -> bool:
    return "://" in location


def resolve(location: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI."""
    if is_uri(location):
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), posixpath.abspath(location)


def join(location: str, *parts: str) -> str:
    """`location` / parts, for paths and URIs alike."""
    return posixpath.join(location.rstrip("/"), *parts)


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_dir(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type == pafs.FileType.Directory


def list_files(fs: pafs.FileSystem, folder: str, suffix: str) -> Iterator[str]:
    """Files directly in `folder` whose names end in `suffix`, sorted."""
    infos = fs.get_file_info(pafs.FileSelector(folder, recursive=False))
    yield from sorted(i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(suffix))


def sha256(fs: pafs.FileSystem, path: str) -> str:
    h = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def write_text_atomically(fs: pafs.FileSystem, path: str, text: str) -> None:
    """Write to a temporary name, then move it in place (a rename locally, a single put on object stores)."""
    tmp = path + ".tmp"
    with fs.open_output_stream(tmp) as out:
        out.write(text.encode("utf-8"))
    fs.move(tmp, path)


def read_text(fs: pafs.FileSystem, path: str) -> str:
    with fs.open_input_stream(path) as f:
        return f.read().decode("utf-8")
