"""A ceiling on how far one compressed Kafka record batch may inflate in memory.

aiokafka inflates a compressed batch whole (``gzip.GzipFile(...).read()``) when its records are
first read, with no limit: one 408 KB gzip batch of zeros became 400 MiB in the service
(benchmarks/README.md ``hostile33`` item 5: peak RSS 86 -> 907 MB), and a fetch of such batches on
many partitions could get the process OOM-killed, stopping every source, again after each
restart. aiokafka's batch classes (compiled and pure Python) look their codec functions up as
module globals at the moment they inflate, so :func:`install` puts bounded ones there:

- gzip is inflated by :func:`inflate_gzip`, a streaming ``zlib`` decompressor whose output never
  exceeds the ceiling (``kafka.max_decompressed_bytes``); beyond it the batch's read raises
  :class:`InflatedBatchTooLarge`, and the Kafka source quarantines the batch whole as fetched
  (``payload_too_large``) and reads on (connectors/kafka_records.py ``UnreadableBatch``);
- snappy, LZ4 and zstd are refused (:class:`UnboundedCodec`): their libraries are not installed
  with urbanpulse, and the block decoders aiokafka would call take no output limit. Such a batch is
  quarantined the same way, its detail naming the codec.

One inflation per batch, as before: the bounded decoder replaces aiokafka's, it does not check
ahead of it. The ceiling is per process (one Kafka source per service).

A ceiling per batch alone would not bound a fetch: one ``getmany`` may take up to ``max_records``
records, each from a batch just under the ceiling (10,000 x 32 MiB). So the bytes inflated since
the source's last :func:`begin_fetch` are counted too, and once they reach the ceiling the lean
records take no further compressed batch in that ``getmany`` (kafka_records.py): what is left waits,
fetched already, for the next one. One ``getmany`` thus inflates at most about twice the ceiling.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

log = logging.getLogger(__name__)

#: the default ceiling: 128 of the largest message validation accepts (``validation.max_payload_bytes``,
#: 256 KiB), the same as ``http_ingest.max_decompressed_bytes``
DEFAULT_LIMIT = 32 * 1024 * 1024

_limit = [DEFAULT_LIMIT]
_spent = [0]  # bytes inflated since the last begin_fetch()


class InflatedBatchTooLarge(ValueError):
    """A compressed record batch inflates beyond the configured ceiling."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the gzip-compressed batch inflates beyond kafka.max_decompressed_bytes ({limit} bytes); "
                         f"not inflated further. If such batches are legitimate, raise kafka.max_decompressed_bytes")
        self.limit = limit


class UnboundedCodec(ValueError):
    """A batch compressed with a codec whose inflation urbanpulse cannot bound."""

    def __init__(self, codec: str) -> None:
        super().__init__(f"{codec}-compressed record batches are not accepted (their inflation cannot be bounded "
                         f"here); have the producer use gzip (compression.type=gzip) or none")
        self.codec = codec


class BadGzip(ValueError):
    """The bytes are not gzip as ``gzip.GzipFile`` reads it (a wrong magic, method or trailer)."""


def _member_header(data: bytes, pos: int) -> int:
    """Where the deflate stream of the gzip member at ``pos`` begins: the header read as
    ``gzip.GzipFile`` reads it (reserved flag bits ignored, unlike zlib's own gzip mode)."""
    def need(n: int) -> None:
        if pos + n > len(data):
            raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    need(2)
    if data[pos:pos + 2] != b"\037\213":
        raise BadGzip(f"Not a gzipped file ({data[pos:pos + 2]!r})")
    need(10)
    method, flag = data[pos + 2], data[pos + 3]
    if method != 8:
        raise BadGzip("Unknown compression method")
    pos += 10
    if flag & 4:  # FEXTRA
        need(2)
        pos += 2 + int.from_bytes(data[pos:pos + 2], "little")
        need(0)
    for bit in (8, 16):  # FNAME, FCOMMENT: zero-terminated
        if flag & bit:
            end = data.find(b"\0", pos)
            if end < 0:
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            pos = end + 1
    if flag & 2:  # FHCRC
        need(2)
        pos += 2
    return pos


def inflate_gzip(data: Any, limit: int) -> bytearray:
    """``data`` (one or more concatenated gzip members, zero padding after each, as
    ``gzip.GzipFile.read`` accepts) inflated, never holding more than ``limit`` bytes of output.

    Raises :class:`InflatedBatchTooLarge` as soon as the output would exceed ``limit``;
    :class:`BadGzip`, ``zlib.error`` or ``EOFError`` where ``gzip.GzipFile`` would raise too
    (a wrong header, corrupt deflate data, a CRC-32 or length that does not match, an early end)."""
    data = bytes(data)
    out = bytearray()
    pos = 0
    while pos < len(data):
        d = zlib.decompressobj(wbits=-zlib.MAX_WBITS)
        start, crc = len(out), 0
        chunk = memoryview(data)[_member_header(data, pos):]
        while not d.eof:
            # max_length is never 0 (which would mean no limit): at most one byte past the ceiling
            piece = d.decompress(chunk, limit - len(out) + 1)
            if len(out) + len(piece) > limit:
                raise InflatedBatchTooLarge(limit)
            out += piece
            crc = zlib.crc32(piece, crc)
            chunk = d.unconsumed_tail
            if not piece and not chunk and not d.eof:
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        trailer = d.unused_data
        if len(trailer) < 8:
            raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        if int.from_bytes(trailer[:4], "little") != crc:
            raise BadGzip("CRC check failed")
        if int.from_bytes(trailer[4:8], "little") != (len(out) - start) & 0xFFFFFFFF:
            raise BadGzip("Incorrect length of data produced")
        pos = len(data) - len(trailer) + 8
        while pos < len(data) and data[pos] == 0:  # zero padding after a member, as GzipFile skips it
            pos += 1
    return out


def limit() -> int:
    """The ceiling in force."""
    return _limit[0]


def begin_fetch() -> None:
    """A new ``getmany`` begins: nothing inflated in it yet."""
    _spent[0] = 0


def fetch_budget_spent() -> bool:
    """Whether this ``getmany`` has inflated the ceiling's worth already (take no more compressed
    batches in it; the first batch of a ``getmany`` is always taken, so reading goes on)."""
    return _spent[0] >= _limit[0]


def _gzip_decode(payload: Any) -> bytearray:
    out = inflate_gzip(payload, _limit[0])
    _spent[0] += len(out)
    return out


def _refuse(codec: str):  # noqa: ANN202 - a decoder aiokafka calls with the compressed bytes
    def decode(payload: Any, *args: Any, **kwargs: Any) -> bytes:
        raise UnboundedCodec(codec)
    decode.__name__ = f"refuse_{codec}"
    return decode


_DECODERS = {"gzip_decode": _gzip_decode, "snappy_decode": _refuse("snappy"), "lz4_decode": _refuse("lz4"),
             "zstd_decode": _refuse("zstd")}
_MODULES = ("aiokafka.record._crecords.default_records", "aiokafka.record._crecords.legacy_records",
            "aiokafka.record.default_records", "aiokafka.record.legacy_records")


def install(max_bytes: int = DEFAULT_LIMIT) -> bool:
    """Set the ceiling and put the bounded decoders into aiokafka's batch modules (idempotent).
    False (and a log line) if none of those modules could be patched: inflation is then unbounded."""
    _limit[0] = max_bytes
    patched = 0
    import importlib

    for name in _MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        for fn, bounded in _DECODERS.items():
            if hasattr(mod, fn):
                setattr(mod, fn, bounded)
                patched += 1
    if not patched:
        log.warning("cannot bound the inflation of compressed Kafka batches (aiokafka's record modules have "
                    "changed): a gzip batch inflates without limit")
    return patched > 0
