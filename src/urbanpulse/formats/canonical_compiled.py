"""Canonical JSON readings decoded a whole batch per call by a compiled kernel, where the
result cannot differ from msgspec's (formats/_canonical_kernel.py says which messages it takes).

Why: on the Kafka path the canonical format's per-message msgspec decode and the column lists
built from its structs were the largest items of the service's main thread (benchmarks/README.md,
``rec21`` and ``dec27``). The kernel parses the batch's payloads, joined, into the reading
columns, and makes one ``str`` per distinct sensor id, metric and unit of the batch instead of
one per reading. A message the kernel does not take (anything unusual: an escape, an array, an
unknown key, a number outside the exactly-rounded fast path, a non-ASCII byte ...) is decoded by
the format's own msgspec path, as a sub-batch of those messages alone, and its readings and
rejections are merged back in message order: every message's readings and rejections are the
ones the msgspec path gives it (tests/test_canonical_compiled.py).

Until the kernel is loaded (:func:`start_loading`, on a thread; a first start may build the
kernels) every batch takes the msgspec path.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from urbanpulse.formats.base import Decoded, MessageBatch
from urbanpulse.model import ReadingColumns
from urbanpulse.optional_kernel import OptionalKernel

if TYPE_CHECKING:
    from urbanpulse.formats.canonical import CanonicalJsonFormat

log = logging.getLogger(__name__)

KERNEL_MODULE = "urbanpulse.formats._canonical_kernel"

# the kernel's rows and statuses (formats/_canonical_kernel.py, which imports Numba; a test checks they agree)
FLOAT_ROWS, INT_ROWS, STRINGS_PER_MESSAGE = 4, 4, 3
F_TS_US, F_VALUE, F_LAT, F_LON = range(4)
I_STATUS, I_SENSOR, I_METRIC, I_UNIT = range(4)
BAIL, TAKEN, TAKEN_NULL = 0, 1, 2
S_START, S_LEN = range(2)



class _Failures:
    """Logs a failed kernel call once per process (it is not expected; each batch it happens to
    is decoded by msgspec's path, so no outcome changes)."""

    logged = False

    def failed(self, exc: BaseException) -> None:
        if not self.logged:
            self.logged = True
            log.error("the compiled JSON decoder failed (%s: %s); such batches are decoded by msgspec's path. "
                      "Please report this.", type(exc).__name__, exc)


_failures = _Failures()


def table_size(n: int) -> int:
    """The hash table the kernel needs for ``n`` messages (``_canonical_kernel.table_size``)."""
    size = 8
    while size < 2 * STRINGS_PER_MESSAGE * n:
        size *= 2
    return size


def _warm_up(mod: ModuleType) -> None:
    _call(mod, [b'{"sensor_id":"s","metric":"m","ts":1,"value":1}', b"[]"], 1024)


#: the compiled decoder, loaded once per process (optional_kernel.py)
_KERNEL = OptionalKernel(KERNEL_MODULE, _warm_up, "canonical JSON is decoded by msgspec",
                         "json-decoder-load")


def load_kernel() -> ModuleType | None:
    """Load the compiled decoder (built ahead of time by urbanpulse.aot, building it if needed)
    and call it once, so that its first real call costs nothing; None if it cannot be had (every
    batch then takes the msgspec path). Blocking: see :func:`start_loading`."""
    return _KERNEL.load()


def start_loading() -> None:
    """:func:`load_kernel` on a thread of its own, once per process."""
    _KERNEL.start_loading()


def kernel() -> ModuleType | None:
    """The loaded kernel, or None (not loaded yet, or it could not be had)."""
    return _KERNEL.module


def _call(mod: ModuleType, payloads: list[bytes], max_bytes: int) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray, int] | None:
    """The kernel over ``payloads`` joined: (the joined bytes, floats, ints, strings, how many
    strings); None where the payloads are not all plain bytes buffers."""
    n = len(payloads)
    try:
        data = b"".join(payloads)
    except TypeError:
        return None
    ends = np.fromiter(map(len, payloads), np.int64, n)
    np.cumsum(ends, out=ends)
    if n and int(ends[-1]) != len(data):  # a memoryview of wider items: len() is not its bytes
        return None
    floats = np.empty((FLOAT_ROWS, n))
    ints = np.empty((INT_ROWS, n), np.int64)
    strings = np.empty((2, STRINGS_PER_MESSAGE * n), np.int64)
    table = np.empty(table_size(n), np.int64)
    count = mod.decode_objects(np.frombuffer(data, np.uint8), ends, max_bytes, floats, ints, strings, table)
    if count < 0:
        raise RuntimeError("the compiled JSON decoder was given tables too small; this is a bug")
    return data, floats, ints, strings, count


def decode(fmt: CanonicalJsonFormat, batch: MessageBatch, mod: ModuleType) -> Decoded | None:
    """``batch`` decoded by the kernel where it takes a message and by ``fmt``'s msgspec path
    where not, merged in message order; None where the kernel takes no message at all (the
    caller then decodes the batch as before)."""
    payloads = batch.payloads
    n = len(payloads)
    if batch.topic_fields is not None or n == 0:
        return None
    try:
        got = _call(mod, payloads, int(fmt.limits.max_payload_bytes))
    except Exception as exc:  # noqa: BLE001 - never a message's fault: the batch takes msgspec's path
        _failures.failed(exc)
        return None
    if got is None:
        return None
    data, floats, ints, strings, count = got
    status = ints[I_STATUS]
    taken = status != BAIL
    n_taken = int(np.count_nonzero(taken))
    if n_taken == 0:
        return None
    text = np.empty(count + 1, object)  # the batch's distinct strings; the last, None, for "no unit"
    text[:count] = [data[a:a + k].decode("ascii") for a, k in
                    zip(strings[S_START, :count].tolist(), strings[S_LEN, :count].tolist())]
    if n_taken == n:
        units = ints[I_UNIT]
        columns = ReadingColumns(
            sensor_id=text[ints[I_SENSOR]].tolist(), metric=text[ints[I_METRIC]].tolist(),
            ts_us=floats[F_TS_US], value=floats[F_VALUE], lat=floats[F_LAT], lon=floats[F_LON],
            unit=text[units].tolist() if units.max() >= 0 else [None] * n,
            msg=np.arange(n, dtype=np.int32), item=np.full(n, -1, np.int32), has_null_value=status == TAKEN_NULL)
        return Decoded(columns=columns, rejections=[], raw_items=[None, {}])
    return _merged(fmt, batch, text, floats, ints, taken)


def _merged(fmt: CanonicalJsonFormat, batch: MessageBatch, text: np.ndarray, floats: np.ndarray,
            ints: np.ndarray, taken: np.ndarray) -> Decoded:
    """The kernel's readings of the messages it took and the msgspec path's of the others, in
    message order (and, within a message, item order), as the msgspec path alone orders them."""
    mine = np.flatnonzero(taken)
    bailed = np.flatnonzero(~taken)
    sub = _subset(batch, bailed.tolist())
    rest = fmt._decode_clean(sub) or fmt._decode_each(sub)  # noqa: SLF001 - the format's own path
    rc = rest.columns
    k = len(mine)
    msg = np.concatenate([mine.astype(np.int32), bailed.astype(np.int32)[rc.msg]])
    order = np.argsort(msg, kind="stable")  # a message's items keep their order
    units = ints[I_UNIT, mine]

    def strings(own: np.ndarray, other: list) -> list:  # noqa: ANN401
        both = np.empty(k + len(other), object)
        both[:k] = text[own]
        both[k:] = other
        return both[order].tolist()

    columns = ReadingColumns(
        sensor_id=strings(ints[I_SENSOR, mine], rc.sensor_id), metric=strings(ints[I_METRIC, mine], rc.metric),
        ts_us=np.concatenate([floats[F_TS_US, mine], rc.ts_us])[order],
        value=np.concatenate([floats[F_VALUE, mine], rc.value])[order],
        lat=np.concatenate([floats[F_LAT, mine], rc.lat])[order],
        lon=np.concatenate([floats[F_LON, mine], rc.lon])[order],
        unit=strings(units, rc.unit), msg=msg[order],
        item=np.concatenate([np.full(k, -1, np.int32), rc.item])[order],
        has_null_value=np.concatenate([ints[I_STATUS, mine] == TAKEN_NULL, rc.has_null_value])[order])
    objs, slow_raw = rest.raw_items[0], rest.raw_items[1]
    at = np.empty(len(order), np.int64)  # where each reading of the concatenation went
    at[order] = np.arange(len(order))
    merged_objs: list[object] = [None] * len(order)
    for j, o in enumerate(objs):  # type: ignore[arg-type]
        merged_objs[int(at[k + j])] = o
    merged_raw = {int(at[k + j]): raw for j, raw in slow_raw.items()}  # type: ignore[union-attr]
    return Decoded(columns=columns, rejections=rest.rejections, raw_items=[merged_objs, merged_raw])


def _subset(batch: MessageBatch, idx: list[int]) -> MessageBatch:
    """Messages ``idx`` of ``batch`` as a batch of their own, with their provenance."""
    def pick(values: list | None) -> list | None:
        return None if values is None else [values[i] for i in idx]

    return MessageBatch(source=batch.source, payloads=[batch.payloads[i] for i in idx], topics=pick(batch.topics),
                        partitions=pick(batch.partitions), offsets=pick(batch.offsets),
                        topic_fields=pick(batch.topic_fields), received_ns=batch.received_ns,
                        lanes=batch.lanes[idx] if batch.lanes is not None else None)
