"""Kafka v2 record batches parsed into arrays: where each record's value lies, and its offset and
timestamp, without a Python object per record (issue 14 item 7; connectors/kafka_records.py).

Compiled with Numba, and ahead of time by :mod:`urbanpulse.aot` like the analytics' kernels. The
functions only *read* a fetch response's bytes: every read is bounds-checked (every length is
compared with the bytes left before it is added, so no int64 sum can wrap), and anything
this parser does not take as it is (another magic, a compressed batch, headers that do not
add up, any size that does not add up) ends the parsed part there; the caller hands the rest to
aiokafka's own records, which then raise or decode exactly as they always have.

Layout (Kafka's ``DefaultRecordBatch``): a 61-byte header (base offset at 0, batch length at 8,
magic at 16, CRC-32C at 17 over bytes 21.., attributes at 21, last offset delta at 23, base and
max timestamp at 27 and 35, record count at 57), then each record: its length (zig-zag varint),
attributes (1 byte), timestamp delta, offset delta, key length, key, value length, value, header
count, headers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: columns of the batch table :func:`frame` fills (one row per record batch)
B_START, B_END, B_BASE_OFFSET, B_LAST_DELTA, B_ATTRIBUTES, B_CRC, B_COUNT, B_BASE_TS, B_MAX_TS, \
    B_FIRST_ROW, B_END_ROW = range(11)
BATCH_COLUMNS = 11
#: columns of the record table :func:`records` fills (one row per record)
R_OFFSET, R_TIMESTAMP, R_VALUE_START, R_VALUE_LEN = range(4)
RECORD_COLUMNS = 4

HEADER_BYTES = 61
#: the smallest record: length, attributes, timestamp delta, offset delta, key length, value
#: length and header count, one byte each
MIN_RECORD_BYTES = 7
_COMPRESSION_MASK = 0x07
_INT64_MAX = 9_223_372_036_854_775_807
_INT64_MIN = -_INT64_MAX - 1
_LOG_APPEND_TIME = 0x08


@njit(cache=False, nogil=True)
def _be(buf: np.ndarray, pos: int, size: int) -> int:
    """Big-endian signed integer of ``size`` bytes at ``pos`` (the caller checked the bounds)."""
    v = 0
    for i in range(size):
        v = (v << 8) | np.int64(buf[pos + i])
    if v >= (np.int64(1) << (8 * size - 1)) and size < 8:
        v -= np.int64(1) << (8 * size)
    return v


@njit(cache=False, nogil=True)
def frame(buf: np.ndarray, table: np.ndarray) -> int:
    """Frame the record batches of ``buf`` (a fetch response's records) into ``table``'s rows,
    from the start, while each is a whole, uncompressed magic-2 batch whose record count fits its
    size; returns how many rows were filled. The first batch that is not (or a partial one at the
    end of the fetch) ends the framing: it starts at ``table[n - 1, B_END]`` (0 if ``n == 0``)."""
    n = buf.shape[0]
    pos = 0
    k = 0
    while k < table.shape[0]:
        if n - pos < HEADER_BYTES:
            break
        length = _be(buf, pos + 8, 4)
        end = pos + 12 + length
        if length < HEADER_BYTES - 12 or end > n:
            break
        if buf[pos + 16] != 2:
            break
        attributes = _be(buf, pos + 21, 2)
        if attributes & _COMPRESSION_MASK:
            break
        count = _be(buf, pos + 57, 4)
        if count < 0 or count > (end - pos - HEADER_BYTES) // MIN_RECORD_BYTES:
            break
        table[k, B_START] = pos
        table[k, B_END] = end
        table[k, B_BASE_OFFSET] = _be(buf, pos, 8)
        table[k, B_LAST_DELTA] = _be(buf, pos + 23, 4)
        table[k, B_ATTRIBUTES] = attributes
        table[k, B_CRC] = _be(buf, pos + 17, 4) & 0xFFFFFFFF
        table[k, B_COUNT] = count
        table[k, B_BASE_TS] = _be(buf, pos + 27, 8)
        table[k, B_MAX_TS] = _be(buf, pos + 35, 8)
        table[k, B_FIRST_ROW] = 0
        table[k, B_END_ROW] = 0
        k += 1
        pos = end
    return k


@njit(cache=False, nogil=True)
def _varint(buf: np.ndarray, pos: int, end: int, out: np.ndarray) -> int:
    """Zig-zag varint at ``pos`` (at most 10 bytes, before ``end``) into ``out[0]``; returns the
    position after it, or -1 if it does not end in time."""
    shift = 0
    raw = np.uint64(0)
    while pos < end and shift < 70:
        b = buf[pos]
        pos += 1
        raw |= np.uint64(b & 0x7F) << np.uint64(shift)
        if b < 0x80:
            out[0] = np.int64(raw >> np.uint64(1)) ^ -np.int64(raw & np.uint64(1))
            return pos
        shift += 7
    return -1


@njit(cache=False, nogil=True)
def _header_end(buf: np.ndarray, pos: int, stop: int, one: np.ndarray) -> int:
    """Skip a record's header count and headers (urbanpulse reads no header): the position after
    them, or -1 where they do not add up the way aiokafka reads them (a negative count or key
    length, a value length below -1, a length beyond ``stop``), so that record is aiokafka's."""
    pos = _varint(buf, pos, stop, one)
    if pos < 0:
        return -1
    count = one[0]
    if count < 0 or count > stop - pos:  # each header takes at least two bytes
        return -1
    for _ in range(count):
        pos = _varint(buf, pos, stop, one)  # the key's length, then the key (any bytes)
        if pos < 0 or one[0] < 0 or one[0] > stop - pos:
            return -1
        pos += one[0]
        pos = _varint(buf, pos, stop, one)  # the value's length (-1: null), then the value
        if pos < 0 or one[0] < -1 or one[0] > stop - pos:
            return -1
        if one[0] > 0:
            pos += one[0]
    return pos


@njit(cache=False, nogil=True)
def records(buf: np.ndarray, table: np.ndarray, n_batches: int, rows: np.ndarray) -> int:
    """Each record of the first ``n_batches`` framed batches as a row of ``rows`` (offset,
    timestamp, value start and length, -1 for a null value); a batch's rows are
    ``table[b, B_FIRST_ROW]:table[b, B_END_ROW]``. Control batches get no rows. Returns how many
    batches were parsed: fewer than ``n_batches`` where a batch holds anything that does not add
    up (a record's headers are skipped: urbanpulse reads none) (the rest is then aiokafka's to read)."""
    one = np.zeros(1, np.int64)
    row = 0
    for b in range(n_batches):
        table[b, B_FIRST_ROW] = row
        attributes = table[b, B_ATTRIBUTES]
        if attributes & 0x20:  # a control batch: skipped whole by the caller
            table[b, B_END_ROW] = row
            continue
        end = table[b, B_END]
        pos = table[b, B_START] + HEADER_BYTES
        base = table[b, B_BASE_OFFSET]
        base_ts = table[b, B_BASE_TS]
        append_time = (attributes & _LOG_APPEND_TIME) != 0
        max_ts = table[b, B_MAX_TS]
        for _ in range(table[b, B_COUNT]):
            if row >= rows.shape[0]:
                return b
            pos = _varint(buf, pos, end, one)
            if pos < 0:
                return b
            length = one[0]
            body = pos
            # every length is compared with the bytes left before it is added: a varint can say
            # up to 2**63 - 1, and int64 arithmetic wraps silently (a key length of 2**63 - 1 sent
            # pos negative and the next read far outside the buffer: a segfault, benchmarks/README.md
            # ``hostile33``)
            if length < MIN_RECORD_BYTES - 1 or length > end - body:
                return b
            stop = body + length
            pos += 1  # the record's attributes (unused)
            pos = _varint(buf, pos, stop, one)
            if pos < 0:
                return b
            d = one[0]  # a timestamp beyond int64 (it would wrap round): aiokafka's to judge
            if (d > 0 and base_ts > 0 and d > _INT64_MAX - base_ts) or \
                    (d < 0 and base_ts < 0 and d < _INT64_MIN - base_ts):
                return b
            ts = max_ts if append_time else base_ts + one[0]
            pos = _varint(buf, pos, stop, one)
            if pos < 0:
                return b
            # before its batch, beyond int64, or in a batch whose base offset is negative: aiokafka's
            # records judge it (kafka_records.check_offsets quarantines a batch below 0 or beyond int64)
            if one[0] < 0 or base < 0 or one[0] > _INT64_MAX - base:
                return b
            offset = base + one[0]
            pos = _varint(buf, pos, stop, one)
            if pos < 0:
                return b
            if one[0] > 0:  # the key (unused)
                if one[0] > stop - pos:
                    return b
                pos += one[0]
            pos = _varint(buf, pos, stop, one)
            if pos < 0:
                return b
            value_len = one[0]
            value_start = pos
            if value_len >= 0:
                if value_len > stop - pos:
                    return b
                pos += value_len
            else:
                value_len = -1
            if pos < stop and buf[pos] == 0:  # no headers (the common case: one byte)
                pos += 1
            else:
                pos = _header_end(buf, pos, stop, one)
            if pos != stop:  # headers that do not add up, or a size that does not add up
                return b
            rows[row, R_OFFSET] = offset
            rows[row, R_TIMESTAMP] = ts
            rows[row, R_VALUE_START] = value_start
            rows[row, R_VALUE_LEN] = value_len
            row += 1
        if pos != end:  # bytes left over after the records
            return b
        table[b, B_END_ROW] = row
    return n_batches


@njit(cache=False, nogil=True)
def _digits(v: int, out: np.ndarray, k: int) -> int:
    """``v`` (>= 0) in decimal ASCII at ``out[k:]``; returns the position after it."""
    d = 1
    t = v // 10
    while t:
        t //= 10
        d += 1
    for i in range(d):
        out[k + d - 1 - i] = 48 + v % 10
        v //= 10
    return k + d


@njit(cache=False, nogil=True)
def _width(v: int) -> int:
    """Decimal digits of ``v`` (>= 0)."""
    d = 1
    v //= 10
    while v:
        v //= 10
        d += 1
    return d


@njit(cache=False, nogil=True)
def value_format(rows: np.ndarray, first: int, end: int, out: np.ndarray) -> int:
    """The ``struct`` format that cuts the values of rows ``first:end`` out of the fetch's bytes
    in one C call (``{gap}x{length}s`` per record, from the first value's start; a null value as
    ``0s``), written as ASCII into ``out``; returns its length, or -1 if ``out`` is too short."""
    k = 0
    prev = rows[first, R_VALUE_START]
    for r in range(first, end):
        start = rows[r, R_VALUE_START]
        length = max(rows[r, R_VALUE_LEN], 0)
        if start < prev or start - prev >= 10 ** 18 or length >= 10 ** 18:
            return -1
        if k + _width(start - prev) + _width(length) + 2 > out.shape[0]:
            return -1
        if start > prev:
            k = _digits(start - prev, out, k)
            out[k] = 120  # x: pad bytes, skipped
            k += 1
        k = _digits(length, out, k)
        out[k] = 115  # s: bytes
        k += 1
        prev = start + length
    return k
