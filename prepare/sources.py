"""The input of `scalelab data prepare`: which files, what each one is, and the documents it holds.

An input is a file, a folder (every file below it, hidden ones left out, in path order) or a
glob. A file's name gives its format: `.jsonl` / `.ndjson` hold one JSON object per line, the
document being one field of it; `.parquet` is a table, the document one column of a row;
anything else is UTF-8 text, one document per file unless a separator cuts it into several.
Any of them may be compressed: `.gz`, `.bz2`, `.xz` (the standard library) or `.zst` (the
`zstandard` package).

Documents come as pieces of at most PIECE_CHARS characters, so that none is ever held whole,
however long, and a tokenizer has many pieces to share among its threads. A long document is
cut where a byte-level BPE's pre-tokenizer splits anyway: after a line break, or before a
space, with a non-blank character on each side. Its ids are then those of the whole document;
only a run of PIECE_CHARS characters with no such place is cut elsewhere.
"""
from __future__ import annotations

import bz2
import codecs
import glob
import gzip
import hashlib
import io
import json
import lzma
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from scalelab.prepare.errors import PrepareError

try:
    import zstandard  # optional: only .zst inputs need it
except ImportError:
    zstandard = None

PIECE_CHARS = 1 << 16
READ_BYTES = 1 << 20  # a text file is read this much at a time
PARQUET_ROWS = 1024  # rows per batch read from a parquet row group

COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
# What a corrupt or truncated compressed file raises while it is read.
READ_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error, lzma.LZMAError) + (
    (zstandard.ZstdError,) if zstandard else ())


@dataclass(frozen=True)
class Source:
    path: str
    format: str  # text, jsonl or parquet
    compression: Optional[str]  # gz, bz2, xz, zst or None


def source_of(path: str) -> Source:
    name = path.lower()
    compression = next((c for c in COMPRESSIONS if name.endswith(c)), None)
    if compression:
        name = name[: -len(compression)]
    kind = "jsonl" if name.endswith(JSONL_SUFFIXES) else "parquet" if name.endswith(".parquet") else "text"
    return Source(path, kind, compression[1:] if compression else None)


def find_sources(inputs: Iterable[str], exclude: Path) -> list[Source]:
    """The files the inputs name, in the order given (each folder and glob in path order), each
    once. Files inside `exclude`, the output folder, are left out: a corpus folder may hold it."""
    exclude = exclude.resolve()
    paths: list[str] = []
    for given in inputs:
        if os.path.isdir(given):
            found = _files_below(given)
        elif os.path.exists(given):
            found = [given]
        else:
            matches = sorted(glob.glob(os.path.expanduser(given), recursive=True))
            if not matches:
                raise PrepareError(f"{given}: no such file, folder or glob match")
            found = [f for m in matches for f in (_files_below(m) if os.path.isdir(m) else [m])]
        paths += [p for p in found if exclude not in Path(p).resolve().parents]
    unique = list(dict.fromkeys(os.path.normpath(p) for p in paths))
    return [source_of(p) for p in unique]


def _files_below(folder: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if not f.startswith(".")]
    return found


def fingerprint(path: str) -> tuple[int, str]:
    """The file's size and sha256, read through once: an unreadable file stops the run here."""
    digest, size = hashlib.sha256(), 0
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
                size += len(block)
    except OSError as e:
        raise PrepareError(f"{path}: cannot read it ({e.strerror or e})") from None
    return size, digest.hexdigest()


def open_binary(source: Source) -> BinaryIO:
    """The file's bytes, decompressed."""
    try:
        if source.compression == "gz":
            return gzip.open(source.path, "rb")
        if source.compression == "bz2":
            return bz2.open(source.path, "rb")
        if source.compression == "xz":
            return lzma.open(source.path, "rb")
        if source.compression == "zst":
            if zstandard is None:
                raise PrepareError(f"{source.path}: reading .zst needs the zstandard package (pip install zstandard)")
            reader = zstandard.ZstdDecompressor().stream_reader(open(source.path, "rb"), read_across_frames=True,
                                                                closefd=True)
            return io.BufferedReader(reader)
        return open(source.path, "rb")
    except OSError as e:
        raise PrepareError(f"{source.path}: cannot read it ({e.strerror or e})") from None


def read_pieces(source: Source, field: str, separator: Optional[str], scratch: Path) -> Iterator[tuple[str, bool]]:
    """(text, whether it ends its document) for each piece of each document of the file, in order.

    `field` is the jsonl field or parquet column; `separator` cuts a text file into documents
    (None: the whole file is one); a compressed parquet file is unpacked into `scratch` first,
    since parquet is read by seeking. An empty document yields nothing.
    """
    what = f"{source.compression} " if source.compression else ""
    try:
        with open_binary(source) as stream:
            if source.format == "text":
                yield from _text_pieces(_text_chunks(stream, source.path), separator)
            elif source.format == "jsonl":
                for document in _jsonl_documents(stream, source.path, field):
                    yield from cut(document)
            elif source.compression:
                with tempfile.TemporaryFile(dir=scratch) as unpacked:
                    while block := stream.read(READ_BYTES):
                        unpacked.write(block)
                    unpacked.seek(0)
                    for document in _parquet_documents(unpacked, source.path, field):
                        yield from cut(document)
            else:
                for document in _parquet_documents(stream, source.path, field):
                    yield from cut(document)
    except READ_ERRORS as e:
        raise PrepareError(f"{source.path}: cannot read it as {what}{source.format} ({e})") from None


def _text_chunks(stream: BinaryIO, path: str) -> Iterator[str]:
    """The file's text, READ_BYTES at a time; invalid UTF-8 or a NUL byte (a binary file) stops it."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes read so far
    while True:
        raw = stream.read(READ_BYTES)
        pending = len(decoder.getstate()[0])  # bytes of a character split by the last read
        try:
            text = decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as e:
            at = offset - pending + e.start
            raise PrepareError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {at})") from None
        nul = text.find("\0")
        if nul >= 0:
            at = offset - pending + len(text[:nul].encode())
            raise PrepareError(f"{path}: a binary file, not text (a NUL byte at offset {at})")
        offset += len(raw)
        if text:
            yield text
        if not raw:
            return


def _text_pieces(chunks: Iterable[str], separator: Optional[str]) -> Iterator[tuple[str, bool]]:
    """The pieces of a text stream whose documents end at `separator` (None: one document)."""
    buffer, started = "", False  # started: the current document has yielded a piece already
    keep = len(separator) if separator else 0  # the buffer's end may be the start of a separator
    for chunk in chunks:
        buffer += chunk
        if separator and separator in buffer:
            *documents, buffer = buffer.split(separator)
            for document in documents:
                if document or started:
                    yield from cut(document)
                started = False
        start = 0
        while len(buffer) - start - keep > PIECE_CHARS:
            end = cut_point(buffer, start, PIECE_CHARS)
            yield buffer[start:end], False
            start, started = end, True
        buffer = buffer[start:]
    if buffer or started:
        yield from cut(buffer)


def cut(document: str) -> Iterator[tuple[str, bool]]:
    """A document in memory as pieces of at most PIECE_CHARS characters, the last one marked."""
    start = 0
    while len(document) - start > PIECE_CHARS:
        end = cut_point(document, start, PIECE_CHARS)
        yield document[start:end], False
        start = end
    yield document[start:], True


def cut_point(text: str, start: int, limit: int) -> int:
    """The end of a piece text[start:end] of at most `limit` characters, as late as possible: after
    a line break, or else before a space, each between two non-blank characters; else the limit."""
    end = start + limit
    for low in (start + limit // 2, start + 1):
        for mark, after in (("\n", 1), (" ", 0)):
            i = text.rfind(mark, low, end)
            while i > start:
                if i + 1 < len(text) and not text[i - 1].isspace() and not text[i + 1].isspace():
                    return i + after
                i = text.rfind(mark, low, i)
    return end


def _jsonl_documents(stream: BinaryIO, path: str, field: str) -> Iterator[str]:
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:  # UnicodeDecodeError included
            raise PrepareError(f"{path}:{number}: not a line of JSON ({e})") from None
        if not isinstance(record, dict) or field not in record:
            has = f"its fields: {', '.join(list(record)[:10])}" if isinstance(record, dict) else f"a JSON {type(record).__name__}"
            raise PrepareError(f"{path}:{number}: no field {field!r} ({has}); --field names the field to read")
        value = record[field]
        if value is None:
            continue
        if not isinstance(value, str):
            raise PrepareError(f"{path}:{number}: field {field!r} holds a JSON {type(value).__name__}, not a string")
        if value:
            yield value


def _parquet_documents(file: BinaryIO, path: str, column: str) -> Iterator[str]:
    try:
        table = pq.ParquetFile(file)
    except (pa.ArrowException, OSError) as e:
        raise PrepareError(f"{path}: not a parquet file ({e})") from None
    schema = table.schema_arrow
    if column not in schema.names:
        raise PrepareError(f"{path}: no column {column!r} (its columns: {', '.join(schema.names[:10])}); "
                           "--field names the column to read")
    kind = schema.field(column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or str(kind) == "string_view"):
        raise PrepareError(f"{path}: column {column!r} holds {kind}, not text")
    try:
        for batch in table.iter_batches(batch_size=PARQUET_ROWS, columns=[column]):
            yield from (value for value in batch.column(0).to_pylist() if value)
    except pa.ArrowException as e:
        raise PrepareError(f"{path}: cannot read column {column!r} ({e})") from None
