"""A Kafka record batch read again where aiokafka refused only a header key that is not UTF-8.

urbanpulse reads no Kafka header. aiokafka, though, decodes every header key strictly as UTF-8
while it reads a batch's records, and raises ``UnicodeDecodeError`` at the first one that is not:
the Kafka source then had the whole batch quarantined as unreadable (kafka_records.UnreadableBatch),
every reading in it included (benchmarks/README.md ``probe33`` item 2, ``hdr34``). A broker that keeps
batches as produced (Tansu) takes such a header from any producer, and Kafka's own clients write
header keys as the producer gives them.

:func:`records_ignoring_header_keys` reads such a batch with aiokafka's own pure-Python batch
reader, every check of it kept (record and header lengths, header count, the bytes left over, the
bounded inflation of kafka_inflate.py), except that a header key decodes with ``surrogateescape``
(never raises; the key's bytes are kept). Only batches aiokafka refused with ``UnicodeDecodeError``
come here, so the fast paths (the compiled parser, aiokafka's C records) are unchanged; this path
costs a few µs a record more, and inflates a compressed batch a second time.
"""

from __future__ import annotations

from typing import Any


class LenientReadUnavailable(RuntimeError):
    """aiokafka's pure-Python batch reader is not the one this module was written against."""

    def __init__(self) -> None:
        super().__init__("aiokafka's pure-Python record batch (aiokafka.record.default_records._DefaultRecordBatchPy) "
                         "has changed; a batch with a non-UTF-8 header key stays unreadable until "
                         "urbanpulse/connectors/kafka_headers.py is updated for this aiokafka")


class _Slice(bytearray):
    """A slice of a batch's bytes; ``decode`` never raises (aiokafka decodes header keys from slices)."""

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:  # noqa: ARG002 - always lenient
        return bytearray.decode(self, encoding, "surrogateescape")


class _Buffer(bytearray):
    """A batch's (inflated) bytes whose slices are :class:`_Slice`: what aiokafka's reader reads."""

    def __getitem__(self, i: Any) -> Any:
        got = bytearray.__getitem__(self, i)
        return _Slice(got) if type(i) is slice else got


_INT64 = range(-(1 << 63), 1 << 63)
_lenient_batch: list[Any] = []  # the reader class, made at the first use


def _reader() -> Any:
    """aiokafka's pure-Python batch reader, with header keys decoded leniently and varints read by
    aiokafka's pure-Python decoder: its compiled one (which that reader would use) does not check
    the position against the buffer, and a hostile length read through it crashed the process
    (SIGSEGV, found by tests/test_kafka_header_keys.py)."""
    if _lenient_batch:
        return _lenient_batch[0]
    try:
        from aiokafka.record.default_records import _DefaultRecordBatchPy
        from aiokafka.record.util import decode_varint_py
    except ImportError as exc:
        raise LenientReadUnavailable() from exc
    if not all(hasattr(_DefaultRecordBatchPy, m) for m in ("_maybe_uncompress", "_read_msg", "__next__")):
        raise LenientReadUnavailable()

    class LenientBatch(_DefaultRecordBatchPy):  # type: ignore[misc, valid-type]
        """One batch, read as aiokafka reads it but for header keys (see the module docstring)."""

        def _maybe_uncompress(self) -> None:
            super()._maybe_uncompress()  # inflated by kafka_inflate's bounded decoder
            if type(self._buffer) is not _Buffer:
                self._buffer = _Buffer(self._buffer)

        def _read_msg(self, decode_varint: Any = decode_varint_py) -> Any:
            return super()._read_msg(decode_varint_py)

    _lenient_batch.append(LenientBatch)
    return LenientBatch


def records_ignoring_header_keys(batch_bytes: bytes) -> list[Any]:
    """The records of the magic-2 batch ``batch_bytes`` (as fetched, header and all) with header keys
    decoded leniently: each has ``offset``, ``value`` and ``timestamp`` as aiokafka's records do.

    Raises as aiokafka's reader does for anything else that is wrong (``CorruptRecordException`` and
    the like: the caller quarantines the batch), also where an offset or timestamp does not fit
    int64 (aiokafka's compiled reader computes them in int64; Python's ints would not stop there),
    or :class:`LenientReadUnavailable`. The caller has checked the CRC already (this reader does not)."""
    from aiokafka.errors import CorruptRecordException

    batch = _reader()(batch_bytes)
    if type(getattr(batch, "_buffer", None)) is not bytearray:
        raise LenientReadUnavailable()
    records = list(batch)
    for r in records:
        if r.offset not in _INT64 or r.timestamp not in _INT64:
            raise CorruptRecordException(f"a record's offset ({r.offset}) or timestamp ({r.timestamp}) "
                                         f"does not fit int64")
    return records
