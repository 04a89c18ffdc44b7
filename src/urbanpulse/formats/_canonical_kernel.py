"""Canonical JSON readings parsed into columns by a compiled kernel, a whole batch per call
(issue 14: msgspec's per-message decode and the column lists built from its structs were the
largest items of the Kafka path's main thread; formats/canonical.py, ``_decode_compiled``).

Compiled with Numba, and ahead of time by :mod:`urbanpulse.aot` like the analytics' kernels.
The kernel takes a message only where its result cannot differ from msgspec's typed decode of
``Reading`` followed by the format's columns; everything else it *bails* on, message by
message, and formats/canonical.py decodes those messages exactly as before. Taken is a single
JSON object, ASCII throughout, of the keys ``sensor_id``, ``metric``, ``ts``, ``value``,
``lat``, ``lon``, ``unit``, each at most once, the first four present, separated by JSON
whitespace (space, tab, LF, CR) only, where:

- strings hold printable ASCII (0x20-0x7F) without a backslash (no escape of any kind), and
  ``sensor_id``/``metric`` are 1-128 characters (``model.Name``); ``unit`` may be null;
- numbers are JSON numbers whose digits (at most 18) make an integer ``m`` <= 2**53 and whose
  decimal exponent ``e`` (after the point) is within [-22, 22]: then ``m * 10**e`` and
  ``m / 10**-e`` are one IEEE operation on exact operands, the correctly rounded value
  (Clinger's fast path), which is msgspec's; ``ts`` is a number (an RFC 3339 string bails);
  ``value``, ``lat`` and ``lon`` a number or null.

Anything else (an array, an unknown or repeated key, a missing field, an escape, a byte >= 0x80
or < 0x20 in a string, a number outside the fast path, nesting, trailing bytes, an empty or
too-large message) bails. Every read is bounds-checked against the message's end.

Strings are not made here: each distinct byte string of a batch gets an index into a table of
(start, length) (one hash table per call, the bytes compared on a hash match), so the caller
makes one ``str`` per distinct sensor id, metric and unit instead of one per reading.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: rows of the ``floats`` output: event time in µs (``ts * 1000.0``), value (NaN for null),
#: lat, lon (NaN when absent or null)
F_TS_US, F_VALUE, F_LAT, F_LON = range(4)
FLOAT_ROWS = 4
#: rows of the ``ints`` output: the message's status (``BAIL``, ``TAKEN``, ``TAKEN_NULL``: taken,
#: its value null), and the indices of its sensor id, metric and unit in the string table (-1: no unit)
I_STATUS, I_SENSOR, I_METRIC, I_UNIT = range(4)
INT_ROWS = 4
BAIL, TAKEN, TAKEN_NULL = 0, 1, 2
#: the string table: one column per distinct string, rows start and length in the batch's bytes
S_START, S_LEN = range(2)
STRINGS_PER_MESSAGE = 3

NAME_MAX = 128  # model.Name's max_length
#: urbanpulse.aot builds this module without Numba's reference counting: it allocates nothing
USES_NRT = False
_MAX_DIGITS = 18
_FAST_EXP = 22
_TWO_53 = 1 << 53

# key ids
_K_SENSOR, _K_METRIC, _K_TS, _K_VALUE, _K_LAT, _K_LON, _K_UNIT = range(7)
_REQUIRED = (1 << _K_SENSOR) | (1 << _K_METRIC) | (1 << _K_TS) | (1 << _K_VALUE)


@njit(cache=False, nogil=True, _nrt=False)
def _ws(buf: np.ndarray, p: int, end: int) -> int:
    """The position after any JSON whitespace at ``p``."""
    while p < end:
        b = buf[p]
        if b != 32 and b != 10 and b != 13 and b != 9:
            break
        p += 1
    return p


@njit(cache=False, nogil=True, _nrt=False)
def _string_end(buf: np.ndarray, p: int, end: int) -> int:
    """Given ``p`` just after an opening quote: the position of the closing quote, or -1 where the
    string holds anything but printable ASCII without a backslash, or does not end in time."""
    while p < end:
        b = buf[p]
        if b == 34:
            return p
        if b < 32 or b > 127 or b == 92:
            return -1
        p += 1
    return -1


_SENSOR_ID, _METRIC, _TS, _VALUE, _LAT, _LON, _UNIT = (tuple(k) for k in (
    b"sensor_id", b"metric", b"ts", b"value", b"lat", b"lon", b"unit"))


@njit(cache=False, nogil=True, _nrt=False)
def _is(buf: np.ndarray, a: int, word: tuple) -> bool:
    """Whether the bytes at ``a`` are ``word`` (the caller checked the length)."""
    for i in range(len(word)):
        if buf[a + i] != word[i]:
            return False
    return True


@njit(cache=False, nogil=True, _nrt=False)
def _key(buf: np.ndarray, a: int, n: int) -> int:
    """The key id of the ``n`` bytes at ``a``; -1 for any other key."""
    if n == 9:
        if _is(buf, a, _SENSOR_ID):
            return _K_SENSOR
    elif n == 6:
        if _is(buf, a, _METRIC):
            return _K_METRIC
    elif n == 2:
        if _is(buf, a, _TS):
            return _K_TS
    elif n == 5:
        if _is(buf, a, _VALUE):
            return _K_VALUE
    elif n == 3:
        if _is(buf, a, _LAT):
            return _K_LAT
        if _is(buf, a, _LON):
            return _K_LON
    elif n == 4:
        if _is(buf, a, _UNIT):
            return _K_UNIT
    return -1


@njit(cache=False, nogil=True, _nrt=False)
def _number(buf: np.ndarray, p: int, end: int) -> tuple[int, float]:
    """A JSON number at ``p``: the position after it and its value where the fast path gives
    its correctly rounded double (module doc), else (-1, 0.0): bail."""
    neg = False
    if p < end and buf[p] == 45:  # -
        neg = True
        p += 1
    if p >= end:
        return -1, 0.0
    m = np.int64(0)
    digits = 0
    b = buf[p]
    if b == 48:  # 0: no digit may follow
        p += 1
        digits = 1
    elif 49 <= b <= 57:
        while p < end and 48 <= buf[p] <= 57:
            digits += 1
            if digits > _MAX_DIGITS:
                return -1, 0.0
            m = m * 10 + np.int64(buf[p] - 48)
            p += 1
    else:
        return -1, 0.0
    exp = 0
    integral = True  # no fraction, no exponent: msgspec reads it as an integer (-0 is +0.0)
    if p < end and buf[p] == 46:  # .
        integral = False
        p += 1
        start = p
        while p < end and 48 <= buf[p] <= 57:
            digits += 1
            if digits > _MAX_DIGITS:
                return -1, 0.0
            m = m * 10 + np.int64(buf[p] - 48)
            exp -= 1
            p += 1
        if p == start:
            return -1, 0.0
    if p < end and (buf[p] == 101 or buf[p] == 69):  # e E
        integral = False
        p += 1
        eneg = False
        if p < end and (buf[p] == 43 or buf[p] == 45):
            eneg = buf[p] == 45
            p += 1
        start = p
        e = 0
        while p < end and 48 <= buf[p] <= 57:
            if p - start >= 3:
                return -1, 0.0
            e = e * 10 + np.int64(buf[p] - 48)
            p += 1
        if p == start:
            return -1, 0.0
        exp += -e if eneg else e
    if m > _TWO_53 or exp > _FAST_EXP or exp < -_FAST_EXP:
        return -1, 0.0
    scale = 1.0
    for _ in range(exp if exp > 0 else -exp):
        scale *= 10.0  # exact: every power of ten up to 1e22 is a double
    v = float(m)
    if exp >= 0:
        v = v * scale
    else:
        v = v / scale
    return p, -v if neg and not (integral and m == 0) else v


@njit(cache=False, nogil=True, _nrt=False)
def _intern(buf: np.ndarray, a: int, n: int, table: np.ndarray, strings: np.ndarray, count: int) -> int:
    """The index of the ``n`` bytes at ``a`` in the string table (``count`` strings long),
    adding them as string ``count`` if new."""
    h = np.uint64(14695981039346656037)
    for i in range(a, a + n):
        h = (h ^ np.uint64(buf[i])) * np.uint64(1099511628211)
    mask = table.shape[0] - 1
    slot = np.int64(h & np.uint64(mask))
    while True:
        k = table[slot]
        if k < 0:
            strings[S_START, count] = a
            strings[S_LEN, count] = n
            table[slot] = count
            return count
        if strings[S_LEN, k] == n:
            s = strings[S_START, k]
            same = True
            for i in range(n):
                if buf[s + i] != buf[a + i]:
                    same = False
                    break
            if same:
                return k
        slot = (slot + 1) & mask


@njit(cache=False, nogil=True, _nrt=False)
def table_size(n: int) -> int:
    """The hash table :func:`decode_objects` needs for ``n`` messages: a power of two above
    twice the most strings they can bring."""
    size = 8
    while size < 2 * STRINGS_PER_MESSAGE * n:
        size *= 2
    return size


@njit(cache=False, nogil=True, _nrt=False)
def decode_objects(buf: np.ndarray, ends: np.ndarray, max_bytes: int, floats: np.ndarray, ints: np.ndarray,
                   strings: np.ndarray, table: np.ndarray) -> int:
    """Each message ``i`` of ``buf`` (the batch's payloads joined; message ``i`` ends at
    ``ends[i]``) parsed into column ``i`` of ``floats`` and ``ints`` where it is taken, status
    ``BAIL`` where not (module doc); returns how many strings the table ``strings`` holds (a
    message's strings are added only once it is taken). ``table`` (:func:`table_size` long,
    any contents) is the hash table's scratch space: the kernel allocates nothing, so that it
    runs without Numba's reference counting (about 3x faster)."""
    n = ends.shape[0]
    if table.shape[0] < table_size(n) or strings.shape[1] < STRINGS_PER_MESSAGE * n \
            or floats.shape[1] < n or ints.shape[1] < n:
        return -1
    table[:] = -1
    count = 0
    start = 0
    for i in range(n):
        end = ends[i]
        a = start
        start = end
        ints[I_STATUS, i] = BAIL
        if end - a <= 0 or end - a > max_bytes or end > buf.shape[0]:
            continue
        p = _ws(buf, a, end)
        if p >= end or buf[p] != 123:  # {
            continue
        p = _ws(buf, p + 1, end)
        seen = 0
        ok = False
        sensor_a = sensor_n = metric_a = metric_n = unit_a = unit_n = 0
        ts = value = 0.0
        lat = lon = np.nan
        null_value = False
        has_unit = False
        while p < end:
            if buf[p] != 34:  # "
                break
            q = _string_end(buf, p + 1, end)
            if q < 0:
                break
            key = _key(buf, p + 1, q - p - 1)
            if key < 0 or seen & (1 << key):
                break
            seen |= 1 << key
            p = _ws(buf, q + 1, end)
            if p >= end or buf[p] != 58:  # :
                break
            p = _ws(buf, p + 1, end)
            if p >= end:
                break
            b = buf[p]
            if key == _K_SENSOR or key == _K_METRIC or (key == _K_UNIT and b == 34):
                if b != 34:
                    break
                q = _string_end(buf, p + 1, end)
                if q < 0:
                    break
                length = q - p - 1
                if key == _K_UNIT:
                    unit_a, unit_n, has_unit = p + 1, length, True
                else:
                    if length < 1 or length > NAME_MAX:
                        break
                    if key == _K_SENSOR:
                        sensor_a, sensor_n = p + 1, length
                    else:
                        metric_a, metric_n = p + 1, length
                p = q + 1
            elif b == 110:  # n: null, for value, lat, lon, unit
                if key == _K_TS or end - p < 4 or buf[p + 1] != 117 or buf[p + 2] != 108 or buf[p + 3] != 108:
                    break
                p += 4
                if key == _K_VALUE:
                    null_value = True
                    value = np.nan
            else:  # a number, for ts, value, lat, lon
                if key == _K_UNIT:
                    break
                p, x = _number(buf, p, end)
                if p < 0:
                    break
                if key == _K_TS:
                    ts = x
                elif key == _K_VALUE:
                    value = x
                elif key == _K_LAT:
                    lat = x
                else:
                    lon = x
            p = _ws(buf, p, end)
            if p >= end:
                break
            if buf[p] == 44:  # ,
                p = _ws(buf, p + 1, end)
                continue
            if buf[p] == 125:  # }
                ok = _ws(buf, p + 1, end) == end
            break
        if not ok or (seen & _REQUIRED) != _REQUIRED:
            continue
        floats[F_TS_US, i] = ts * 1000.0
        floats[F_VALUE, i] = value
        floats[F_LAT, i] = lat
        floats[F_LON, i] = lon
        k = _intern(buf, sensor_a, sensor_n, table, strings, count)
        count += k == count
        ints[I_SENSOR, i] = k
        k = _intern(buf, metric_a, metric_n, table, strings, count)
        count += k == count
        ints[I_METRIC, i] = k
        k = -1
        if has_unit:
            k = _intern(buf, unit_a, unit_n, table, strings, count)
            count += k == count
        ints[I_UNIT, i] = k
        ints[I_STATUS, i] = TAKEN_NULL if null_value else TAKEN
    return count
