"""Result documents as SQLite keeps them: the JSON text's UTF-8 bytes in one Zstandard frame.

A result is about 57 kB of JSON whose texts (each requirement's why and fix, in every language)
repeat from run to run; Zstandard's level 1 makes it a fifth of that in about a tenth of a
millisecond. Measured (bench/ingest.py, SQLite): storing the whole text was a third of the
collector's ingest throughput, most of it the kernel copying the pages written (the WAL's,
then the checkpoint's), about 197 kB per 72 kB result.

A packed document is a BLOB in the same ``results.document`` column; documents stored before
are JSON text and stay so. Every reader goes through the engine's JSON deserializer
(``store._deserialize``), which unpacks a BLOB that begins with the frame's magic number (JSON
text never does: it begins with a brace or white space). PostgreSQL keeps documents as JSONB,
which it compresses itself (TOAST).

The library: the standard library's ``compression.zstd`` from Python 3.14, its backport
(``backports.zstd``, the same API) before."""

from __future__ import annotations

import threading

try:  # Python 3.14+
    from compression import zstd
except ImportError:  # pragma: no cover - depends on the Python version
    from backports import zstd

MAGIC = b"\x28\xb5\x2f\xfd"  # every Zstandard frame begins with it (RFC 8878)
LEVEL = 1  # 0.11-0.15 ms for 58 kB, a fifth of the size; level 3: 0.18 ms, 5.2 x instead of 5.0 x


class Packed(bytes):
    """A document's JSON text (UTF-8) as one Zstandard frame, stored as it is (a BLOB)."""


_local = threading.local()  # a compressor per thread (one is not shared by two threads at once)


def pack(text: bytes | str) -> Packed:
    """The JSON text (UTF-8 bytes, or a str) packed."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstd.ZstdCompressor(level=LEVEL)
    return Packed(compressor.compress(text, mode=zstd.ZstdCompressor.FLUSH_FRAME))


def is_packed(value: object) -> bool:
    return isinstance(value, (bytes, bytearray, memoryview)) and bytes(value[:4]) == MAGIC


def unpack(value: bytes) -> bytes:
    """The JSON text's UTF-8 bytes of a packed document."""
    return zstd.decompress(value)


def json_text(value: str | bytes) -> str | bytes:
    """A stored JSON value as its text: a packed one unpacked, JSON text as it is."""
    return unpack(value) if is_packed(value) else value
