"""Input batches: discovery, identity, schema checks and streaming reads.

A batch is one Parquet file, on this machine or at a URI `pyarrow.fs` resolves
(`file://`, `s3://`, `gs://`, ...). Its identity is its **key** -- its path relative to
the task's input location -- plus its content hash: a file rewritten with new content
is a new batch, an unchanged file is never scored twice, and a copied, moved or
re-mounted input folder (same keys, same contents) is not scored again.

A file that cannot be opened or hashed is still a batch (it fails alone, with its reason
in `unreadable`); its content hash is then a stand-in made of its size and mtime, so it
stays failed until it changes or an operator retries it. Errors name the batch and say
in plain words what is wrong, with the Parquet library's message after it, on one line.
"""
from __future__ import annotations

import fnmatch
import glob
import posixpath
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from calscore.jobs.common import filesystems
from calscore.jobs.common.deadline import within
from calscore.jobs.common.errors import CalscoreError
from calscore.jobs.spec import InputSpec


class BatchSchemaError(CalscoreError, ValueError):
    """A batch file that cannot be scored at all (nothing of it is written)."""


class BatchReadError(CalscoreError, OSError):
    """A batch whose data cannot be read or decoded (a corrupt page, a truncated file)."""


class InputLocationError(CalscoreError, ValueError):
    """The task's input location does not exist, cannot be listed, or does not answer in time."""


def one_line(message: str) -> str:
    """A library's message on one line: Parquet errors span lines and carry control characters."""
    return " ".join("".join(c if c.isprintable() else " " for c in message).split())


def _problem(key: str, exc: BaseException, corrupt: str | None = None) -> str:
    """Why a batch cannot be used: the file cannot be opened or read (an OS error, or nothing was being
    decoded), or it is corrupt (`corrupt` says what could not be decoded)."""
    if corrupt is None or (isinstance(exc, OSError) and exc.errno is not None):
        return f"{key}: cannot be opened or read ({one_line(str(exc))})"
    return f"{key}: the file is corrupt: {corrupt} (Parquet library: {one_line(str(exc))})"


@dataclass(frozen=True)
class BatchRef:
    key: str  # path relative to `root`, with '/' separators: the batch's name in the ledger
    content_hash: str
    root: str = ""  # the folder or URI keys are relative to (see input_root)
    unreadable: str | None = None  # why the file cannot be opened or hashed (content_hash is then a stand-in)

    @property
    def location(self) -> str:
        return filesystems.join(self.root, self.key)

    def open(self) -> pq.ParquetFile:
        fs, path = filesystems.resolve(self.location)
        return pq.ParquetFile(fs.open_input_file(path))

    def now(self) -> "BatchRef | None":
        """What is at the batch's location now (None when it is gone), hashed or unreadable."""
        fs, path = filesystems.resolve(self.location)
        return _identify(fs, path, self.key, self.root)


_hashes: dict[tuple[str, str, int, int | None], str] = {}


def _hash(fs: pafs.FileSystem, path: str, size: int, mtime_ns: int | None) -> str:
    """Content hash, cached per process by (path, size, mtime): an unchanged file is not read again."""
    key = (fs.type_name, path, size, mtime_ns)
    if key not in _hashes:
        _hashes[key] = filesystems.sha256(fs, path)
    return _hashes[key]


def _identify(fs: pafs.FileSystem, path: str, key: str, root: str) -> BatchRef | None:
    """The batch at `path` with its content hash, or unreadable with the reason; None when it is gone."""
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        return None
    try:
        return BatchRef(key, _hash(fs, path, info.size, info.mtime_ns), root)
    except (OSError, pa.ArrowException) as exc:
        return BatchRef(key, f"unreadable-{info.size}-{info.mtime_ns}", root, unreadable=_problem(key, exc))


def input_root(location: str) -> str:
    """The folder batch keys are relative to: the location itself, or a glob's leading folders without wildcards."""
    scheme, sep, rest = location.partition("://")
    path = rest if sep else location
    parts = path.split("/")
    fixed = parts[: next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts))]
    root = "/".join(fixed) or ("/" if path.startswith("/") else ".")
    return f"{scheme}://{root}" if sep else root


def discover(spec_input: InputSpec) -> list[BatchRef]:
    """Parquet files at the input location (a folder or a glob, path or URI), sorted by key, with their hashes.
    Listing the location must answer within `[input] connect_timeout` seconds (InputLocationError, naming it)."""
    location = spec_input.location
    root = input_root(location)
    try:
        fs, root_path, paths = within(spec_input.connect_timeout, lambda: _listing(location, root))
    except TimeoutError:
        raise InputLocationError(f"[input] location {location!r} did not answer within "
                                 f"{spec_input.connect_timeout:g} s ([input] connect_timeout)") from None
    except OSError as exc:
        raise InputLocationError(f"[input] location {location!r} cannot be listed: {one_line(str(exc))}") from None
    found = (_identify(fs, path, posixpath.relpath(path, root_path), root) for path in paths)
    return [ref for ref in found if ref is not None]


def _listing(location: str, root: str) -> tuple[pafs.FileSystem, str, list[str]]:
    """(filesystem, root path, the Parquet files' paths) of an input location."""
    fs, root_path = filesystems.resolve(root)
    if not filesystems.is_dir(fs, root_path):
        raise InputLocationError(f"[input] location {location!r} does not exist (or is not a folder)")
    if root == location.rstrip("/"):
        return fs, root_path, list(filesystems.list_files(fs, root_path, ".parquet"))
    _, pattern = filesystems.resolve(location)
    infos = fs.get_file_info(pafs.FileSelector(root_path, recursive=True))
    files = (i.path for i in infos if i.type == pafs.FileType.File and fnmatch.fnmatch(i.path, pattern))
    return fs, root_path, sorted(files)


def batch_ref(spec_input: InputSpec, key: str, content_hash: str) -> BatchRef:
    """The batch `key` of this task's input location (for tasks that get a key, not a path)."""
    return BatchRef(key, content_hash, input_root(spec_input.location))


def check_schema(ref: BatchRef, columns: InputSpec) -> pa.Schema:
    """The batch's schema, or BatchSchemaError naming the file and the problem."""
    try:
        schema = ref.open().schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise BatchSchemaError(_problem(ref.key, exc, "its footer (the schema) cannot be read, or it is not "
                                                      "a Parquet file")) from None
    for role, name in (("id", columns.id_column), ("text", columns.text_column)):
        if name not in schema.names:
            raise BatchSchemaError(
                f"{ref.key}: missing {role} column {name!r} (columns: {', '.join(schema.names)})"
            )
    text_type = schema.field(columns.text_column).type
    if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
        raise BatchSchemaError(f"{ref.key}: text column {columns.text_column!r} has type {text_type}, expected string")
    return schema


def schema_warnings(ref: BatchRef, schema: pa.Schema, columns: InputSpec) -> list[str]:
    """What a batch lacks that does not stop scoring: a missing segment column leaves its rows' segment NULL."""
    if columns.segment_column and columns.segment_column not in schema.names:
        return [f"{ref.key}: no segment column {columns.segment_column!r} ([input] segment_column); "
                "its rows have no segment"]
    return []


def row_count(ref: BatchRef) -> int:
    """Rows in the batch, from the Parquet footer."""
    try:
        return ref.open().metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise BatchReadError(_problem(ref.key, exc, "its footer cannot be read")) from exc


def iter_chunks(ref: BatchRef, rows_per_chunk: int):
    """Stream a batch in record batches of `rows_per_chunk` rows (memory stays flat whatever the file size).

    A file whose footer is fine but whose data cannot be decoded fails here, chunk by
    chunk: raised as BatchReadError naming the file, so that batch fails alone.
    """
    try:
        offset = 0
        for record_batch in ref.open().iter_batches(batch_size=rows_per_chunk):
            table = pa.Table.from_batches([record_batch])
            yield offset, table
            offset += table.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise BatchReadError(_problem(ref.key, exc, "its data cannot be decoded")) from exc
