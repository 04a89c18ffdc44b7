"""Fetched Kafka records handed over a record batch at a time, without a Python object per record.

aiokafka turns every fetched record into a ``ConsumerRecord`` dataclass, one generator step and
one Python call at a time: about 2-3 µs a record, a quarter of the event loop at 200k readings/s
(issue 14 item 7). The Kafka source needs three things of a record (its value, its offset, and
the first record's timestamp), all of which the C-parsed record aiokafka makes first already
has. A consumer that asks for it (``value_deserializer=LEAN``) gets those records as they are,
a whole record batch per list extension.

Everything else is aiokafka's own logic, kept: the CRC check (a corrupt batch raises
``CorruptRecordException`` as before), control batches skipped, records before the fetch offset
skipped (a fetch returns the whole batch holding that offset), the consumed position advanced
exactly as far as the records handed over, ``max_records`` honoured (a batch split across two
calls keeps its rest). Only ``read_uncommitted`` consumers take this path (the source never asks
for ``read_committed``); any other consumer in the process is untouched. If aiokafka's internals
do not look as this module expects, :func:`install` says so and changes nothing: ``LEAN`` is then
an identity deserializer and aiokafka's own path runs.

Below that, a fetched partition's bytes are parsed by a compiled kernel (``_records_kernel``,
built ahead of time with the analytics' kernels) into arrays of value positions, offsets and
timestamps: a ``getmany`` then hands over a :class:`RecordRun` per partition (the values as
``bytes`` sliced from the fetch, the offsets as a ``range`` where every step is 1), with no
object per record at all. The same rules hold (CRC of each batch through aiokafka's own batch
object, control batches, the fetch offset, ``max_records``, the position); whatever the kernel
does not take as it is (a compressed or older-format batch, headers that do not add up, anything
malformed) ends its part of the fetch, and aiokafka's records read the rest as above. Until the
kernel is loaded (:func:`start_loading`; a first start may build it), every fetch takes that path.
"""

from __future__ import annotations

import inspect
import logging
import operator
import struct
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from urbanpulse.connectors.kafka_headers import records_ignoring_header_keys
from urbanpulse.connectors.kafka_inflate import InflatedBatchTooLarge, fetch_budget_spent
from urbanpulse.optional_kernel import OptionalKernel

log = logging.getLogger(__name__)

def _warm_up(mod: ModuleType) -> None:
    buf = np.frombuffer(bytes(61), np.uint8)  # read-only, as a fetch's bytes are
    table = np.empty((1, BATCH_COLUMNS), np.int64)
    n = mod.frame(buf, table)
    rows = np.zeros((1, RECORD_COLUMNS), np.int64)
    mod.records(buf, table, n, rows)
    mod.value_format(rows, 0, 1, np.empty(64, np.uint8))


#: the compiled record parser, loaded once per process (optional_kernel.py); ``.module`` is None
#: until then (or where it cannot be had) and the fetches take aiokafka's records
PARSER = OptionalKernel("urbanpulse.connectors._records_kernel", _warm_up, "fetches use aiokafka's records",
                        "kafka-parser-load")


def load_parser() -> ModuleType | None:
    """Load the compiled record parser (built ahead of time by urbanpulse.aot, building it if
    needed) and call it once, so that its first real call costs nothing; None if it cannot be
    had (the fetches then stay on aiokafka's records). Blocking: see :func:`start_loading`."""
    return PARSER.load()


def start_loading() -> None:
    """:func:`load_parser` on a thread of its own, once per process (a first start may build the
    kernels, which takes tens of seconds; the fetches meanwhile take aiokafka's records)."""
    PARSER.start_loading()


# the parser's table columns (connectors/_records_kernel.py, which imports Numba; a test checks they agree)
BATCH_COLUMNS = 11
RECORD_COLUMNS = 4
HEADER_BYTES = 61
_B_START, _B_END, _B_BASE_OFFSET, _B_LAST_DELTA, _B_ATTRIBUTES, _B_CRC, _B_COUNT, _B_BASE_TS, _B_MAX_TS, \
    _B_FIRST_ROW, _B_END_ROW = range(11)
_R_OFFSET, _R_TIMESTAMP, _R_VALUE_START, _R_VALUE_LEN = range(4)
_CONTROL = 0x20


class LeanRecord(NamedTuple):
    """One record of a :class:`RecordRun`, for a caller that asks for records one at a time."""

    offset: int
    value: bytes | None
    timestamp: int


class UnreadableBatch(NamedTuple):
    """A record batch neither the parser nor aiokafka could read (its CRC-32C does not match, or a
    record in it does not parse: aiokafka raised), handed over alone, in place of its records, so
    that the source quarantines it and moves past it (connectors/kafka.py).

    Before (benchmarks/README.md ``hostile33``) the fetch raised: the source failed, restarted,
    fetched the same batch and failed again, for ever, and nothing after it on that partition was
    stored. A broker that keeps batches as produced (Tansu) accepts such a batch from any producer.
    """

    #: the first offset of the batch not yet handed over (the quarantine row's offset)
    offset: int
    #: where the partition is read from next (the offset after the batch)
    next_offset: int
    #: the batch's bytes as fetched (b"" where they were not at hand)
    value: bytes
    timestamp: int
    #: what was wrong with it, for the quarantine row's detail
    error: str
    #: the quarantine reason: ``payload_too_large`` where it inflates beyond
    #: ``kafka.max_decompressed_bytes`` (connectors/kafka_inflate.py), else ``malformed``
    reason: str = "malformed"


class RecordRun:
    """One partition's records of one ``getmany``, as columns: ``values`` (``bytes``, None for a
    null value), ``offsets`` (a ``range`` where contiguous, else a list) and ``timestamps`` (an
    int64 array). ``has_null`` says whether any value is None. ``resume``: see :class:`RecordList`."""

    __slots__ = ("values", "offsets", "timestamps", "has_null", "resume")

    def __init__(self, values: list[bytes | None], offsets: range | list[int], timestamps: np.ndarray,
                 has_null: bool) -> None:
        self.values = values
        self.offsets = offsets
        self.timestamps = timestamps
        self.has_null = has_null
        self.resume: int | None = None

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, i: int) -> LeanRecord:
        return LeanRecord(self.offsets[i], self.values[i], int(self.timestamps[i]))

    def __iter__(self):  # noqa: ANN204 - LeanRecords, one at a time (tests, getone)
        return (self[i] for i in range(len(self)))


class RecordList(list):
    """aiokafka's records of one take, with ``resume``: the offset to commit for them where a record
    batch was split by ``max_records`` and a record left for the next take has an offset below the
    last one taken plus one (a hostile batch's repeated or backward offset deltas, 0, 1, 1, 3 split
    after the first 1). Committing ``last + 1`` there would skip that record after a restart (the
    fetch skips records below the committed offset): dup39. None: commit ``last + 1``.
    ``offsets``: each record's own offset, in order (read once, by :func:`check_offsets`)."""

    resume: int | None = None
    offsets: list[int] | None = None


def LEAN(value: bytes | None) -> bytes | None:  # noqa: N802 - a marker, named like a constant
    """The value deserializer that asks for lean records (an identity function, so that without
    :func:`install` the consumer behaves exactly as with no deserializer)."""
    return value


_installed: bool | None = None
_stock: list[Any] = [None]  # aiokafka's PartitionRecords, once install() has replaced it
#: aiokafka's PartitionRecords.__init__ as this module was written against (0.11-0.14)
_RECORDS_PARAMS = ["self", "tp", "records", "aborted_transactions", "fetch_offset", "key_deserializer",
                   "value_deserializer", "check_crcs", "isolation_level"]


def stock_partition_records() -> Any:
    """aiokafka's own ``PartitionRecords`` class (None before :func:`install`): the tests' oracle."""
    return _stock[0]


def install() -> bool:
    """Route consumers created with ``value_deserializer=LEAN`` to the lean path; idempotent.
    False (and a log line) if this aiokafka's fetcher is not the one this module was written for."""
    global _installed
    if _installed is not None:
        return _installed
    try:
        from aiokafka.consumer import fetcher as f
        from aiokafka.errors import CorruptRecordException
    except ImportError as exc:
        log.warning("lean Kafka records not available (%s): using aiokafka's records", exc)
        _installed = False
        return False
    stock_records = getattr(f, "PartitionRecords", None)
    stock_result = getattr(f, "FetchResult", None)
    stock_memory = getattr(f, "MemoryRecords", None)
    read_uncommitted = getattr(f, "READ_UNCOMMITTED", None)
    if stock_records is None or stock_result is None or read_uncommitted is None or stock_memory is None \
            or list(inspect.signature(stock_records.__init__).parameters) != _RECORDS_PARAMS \
            or not all(hasattr(stock_result, m) for m in ("getall", "check_assignment", "_update_position", "has_more")):
        log.warning("lean Kafka records not available (aiokafka's fetcher has changed): using aiokafka's records")
        _installed = False
        return False
    from aiokafka.record.default_records import DefaultRecordBatch

    #: the fetcher's latest MemoryRecords and the bytes it was made of: the fetcher makes one, then
    #: at once (no await between) the PartitionRecords over it, which takes the bytes from here
    kept: list[Any] = [None, None]

    def memory_records(data: Any) -> Any:
        records = stock_memory(data)
        kept[0], kept[1] = records, data
        return records

    class LeanPartitionRecords(stock_records):  # type: ignore[misc, valid-type]
        """A fetched partition's records, handed over as a :class:`RecordRun` parsed by the compiled
        kernel from ``raw`` (the fetch's bytes), else as aiokafka's C-parsed records."""

        def __init__(self, *args: Any, raw: bytes | None = None) -> None:
            super().__init__(*args)
            self._rest: list[Any] = []  # records of a batch split by max_records, not yet taken
            self._rest_offs: list[int] = []  # their offsets
            self._rest_next = 0  # that batch's next offset
            self._raw = raw  # parsed at the first take (then None)
            self._batches: list[list[int]] = []  # the parsed batches (the kernel's table rows) not yet done
            self._rows: np.ndarray | None = None  # their records (the kernel's record table)
            self._row: int | None = None  # the next record of _batches[0], once that batch is begun
            self._data = b""  # the parsed bytes
            #: the bytes aiokafka's records (``_records``) read, and where its next batch starts there:
            #: an unreadable batch is quarantined as these bytes (see UnreadableBatch)
            self._stock_data = raw if raw is not None else b""
            self._stock_pos = 0
            self._unreadable: UnreadableBatch | None = None  # found, handed over at the next take
            self._resume: int | None = None  # this take's safe commit where it split a batch (RecordList)

        def _unpack_records(self):  # noqa: ANN202 - aiokafka's one-at-a-time iteration, kept working
            while True:
                got = self.take(1)
                if not got:
                    return
                yield got[0]

        def exhausted(self) -> bool:
            return self._raw is None and not self._batches and not self._rest and self._unreadable is None \
                and not self._records.has_next()

        def _parse(self, parser: ModuleType) -> None:
            """The fetch's bytes through the kernel; aiokafka's records read what it did not take."""
            raw, self._raw = self._raw, None
            buf = np.frombuffer(raw, np.uint8)
            cap = min(len(raw) // HEADER_BYTES + 1, 64)
            while True:  # a table for the batches (a fetch holds a few; grown where it holds more)
                table = np.empty((cap, BATCH_COLUMNS), np.int64)
                n = parser.frame(buf, table)
                if n < cap or cap > len(raw) // HEADER_BYTES:
                    break
                cap *= 4
            if n == 0:
                return
            rows = np.empty((int(table[:n, _B_COUNT].sum()), RECORD_COLUMNS), np.int64)
            n = parser.records(buf, table, n, rows)
            if n == 0:
                return
            self._batches = table[:n].tolist()
            self._rows = rows
            self._data = raw
            tail = self._batches[-1][_B_END]
            self._stock_data, self._stock_pos = (raw[tail:] if tail < len(raw) else b""), 0
            self._records = stock_memory(self._stock_data)

        def take(self, max_records: int | None) -> Any:
            """Up to ``max_records`` records (all if None), advancing ``next_fetch_offset``: a
            :class:`RecordRun` where the fetch's bytes were parsed, else aiokafka's records."""
            want = max_records if max_records is not None else 1 << 62
            self._resume = None
            if self._unreadable is not None:
                return self._hand_unreadable()
            if self._raw is not None:
                parser = PARSER.module
                if parser is None:
                    self._raw = None
                else:
                    self._parse(parser)
            if not self._batches and self._rows is None:
                got = self._take_records(want)
                if got and got.offsets[-1] >= self.next_fetch_offset:
                    self._bound_resume()
                got.resume = self._resume
                return got if got or self._unreadable is None else self._hand_unreadable()
            pieces: list[Any] = []  # [first row, end row] of the parsed part, then a tuple of aiokafka's records
            room = self._take_parsed(want, pieces)
            if room > 0 and not self._batches:
                got = self._take_records(room)
                if got:
                    pieces.append(tuple(got))
            run = _run(self._data, self._rows, pieces, PARSER.module)
            if run and run.offsets[-1] >= self.next_fetch_offset:
                self._bound_resume()
            if self._resume is not None and type(run) is RecordRun:
                run.resume = self._resume
            if not self._batches:
                # the parsed part is handed over: free the fetch's bytes now, as aiokafka's records do
                # (this object sits in a reference cycle with its iterator, which is collected late)
                self._rows, self._data = None, b""
            return run if run or self._unreadable is None else self._hand_unreadable()

        def _bound_resume(self) -> None:
            """The take's last record lies at or past the position (a hostile offset delta beyond its
            batch's last offset delta: 0, 1000 in a batch whose next offset is 2): committing ``last + 1``
            would skip the batches from the position to there after a restart, though none of their
            records was handed over (hostile40). The commit is the position then: the fetch from it
            begins at the next batch."""
            at = self.next_fetch_offset
            self._resume = at if self._resume is None else min(self._resume, at)

        def _hand_unreadable(self) -> list[UnreadableBatch]:
            """The unreadable batch found, alone; the position moves past it."""
            u, self._unreadable = self._unreadable, None
            self.next_fetch_offset = u.next_offset
            return [u]

        def _found_unreadable(self, base_offset: int, last_delta: int, timestamp: int, data: bytes,
                              error: str, reason: str = "malformed") -> bool:
            """Keep a batch that cannot be read for the next take (the records before it go first);
            False where it lies wholly before the position (read past already: nothing to hand over)."""
            if last_delta >= 0 and base_offset + last_delta + 1 <= self.next_fetch_offset:
                return False
            first = max(base_offset, self.next_fetch_offset)
            # a hostile last offset delta must not leave the position where it is (the broker would
            # hand the same batch over again, for ever)
            after = max(base_offset + last_delta + 1, first + 1)
            self._unreadable = UnreadableBatch(first, after, data, timestamp, error, reason)
            return True

        def _take_parsed(self, want: int, pieces: list[Any]) -> int:
            """Rows of the parsed batches into ``pieces``, up to ``want``; returns the room left."""
            batches, rows, room = self._batches, self._rows, want
            while room > 0 and batches:
                b = batches[0]
                if self._row is None:  # the batch begins: the checks aiokafka makes of a batch
                    if self._check_crcs and not DefaultRecordBatch(
                            memoryview(self._data)[b[_B_START]:b[_B_END]]).validate_crc():
                        batches.pop(0)
                        if self._found_unreadable(b[_B_BASE_OFFSET], b[_B_LAST_DELTA], b[_B_BASE_TS],
                                                  self._data[b[_B_START]:b[_B_END]],
                                                  f"CorruptRecordException: Invalid CRC - {self._tp}"):
                            return 0
                        continue
                    if b[_B_ATTRIBUTES] & _CONTROL:
                        self.next_fetch_offset = b[_B_BASE_OFFSET] + b[_B_LAST_DELTA] + 1
                        batches.pop(0)
                        continue
                    first = b[_B_FIRST_ROW]
                    if first < b[_B_END_ROW] and rows[first, _R_OFFSET] < self.next_fetch_offset:
                        # the fetch began inside this batch: from its first record at or past the offset
                        # (not a binary search: a hostile batch's offsets need not be sorted, dup39)
                        at = np.flatnonzero(rows[first:b[_B_END_ROW], _R_OFFSET] >= self.next_fetch_offset)
                        first = int(first + at[0]) if len(at) else b[_B_END_ROW]
                    self._row = first
                first, end = self._row, b[_B_END_ROW]
                k = min(room, end - first)
                if k:
                    if pieces and pieces[-1][1] == first:
                        pieces[-1][1] = first + k
                    else:
                        pieces.append([first, first + k])
                room -= k
                if first + k < end:  # split by max_records: the rest at the next take
                    self._row = first + k
                    self.next_fetch_offset = int(rows[first + k - 1, _R_OFFSET]) + 1
                    self._resume = min(self.next_fetch_offset, int(rows[first + k:end, _R_OFFSET].min()))
                    return 0
                self._row = None
                self.next_fetch_offset = b[_B_BASE_OFFSET] + b[_B_LAST_DELTA] + 1
                batches.pop(0)
            return room

        def _take_records(self, want: int) -> RecordList:
            """Up to ``want`` of aiokafka's C-parsed records, advancing ``next_fetch_offset``."""
            out = RecordList()
            out.offsets = []
            if self._rest:
                recs, self._rest = self._rest, []
                offs, self._rest_offs = self._rest_offs, []
                if not self._put(out, recs, offs, want, self._rest_next):
                    return out
            records = self._records
            data = self._stock_data
            while len(out) < want and records.has_next():
                if fetch_budget_spent():  # this getmany inflated enough (kafka_inflate.py): the rest waits
                    break
                at = self._stock_pos
                batch = records.next_batch()
                if batch is None:
                    break
                size = 12 + int.from_bytes(data[at + 8:at + 12], "big", signed=True) if len(data) >= at + 12 else 0
                self._stock_pos = at + size
                try:
                    if self._check_crcs and not batch.validate_crc():
                        raise CorruptRecordException(f"Invalid CRC - {self._tp}")
                    if batch.is_control_batch:
                        self.next_fetch_offset = batch.next_offset
                        continue
                    recs = _records_of(batch, data, at, size)
                    offs = check_offsets(recs, batch.base_offset)
                except Exception as exc:  # noqa: BLE001 - one bad batch must not stop the partition
                    text = f"{type(exc).__name__}: {exc}"
                    if self._found_unreadable(getattr(batch, "base_offset", self.next_fetch_offset),
                                              getattr(batch, "last_offset_delta", 0),
                                              getattr(batch, "first_timestamp", None) or -1,
                                              data[at:at + size] if 0 < size <= len(data) - at else b"", text,
                                              "payload_too_large" if isinstance(exc, InflatedBatchTooLarge)
                                              else "malformed"):
                        break
                    continue
                if recs and offs[0] < self.next_fetch_offset:  # the fetch began inside this batch
                    start = self.next_fetch_offset
                    keep = [i for i, o in enumerate(offs) if o >= start]
                    recs, offs = [recs[i] for i in keep], [offs[i] for i in keep]
                if not self._put(out, recs, offs, want, batch.next_offset):
                    break
            return out

        def _put(self, out: RecordList, recs: list[Any], offs: list[int], want: int, next_offset: int) -> bool:
            """Move ``recs`` (one batch's, at ``offs``) into ``out`` up to ``want``; False if some are left."""
            room = want - len(out)
            if len(recs) > room:
                out.extend(recs[:room])
                out.offsets.extend(offs[:room])
                self._rest, self._rest_offs, self._rest_next = recs[room:], offs[room:], next_offset
                self.next_fetch_offset = out.offsets[-1] + 1
                self._resume = min(self.next_fetch_offset, min(self._rest_offs))
                return False
            out.extend(recs)
            out.offsets.extend(offs)
            self.next_fetch_offset = next_offset
            return True

    def partition_records(tp: Any, records: Any, aborted: Any, fetch_offset: Any, key_deserializer: Any,
                          value_deserializer: Any, check_crcs: Any, isolation_level: Any) -> Any:
        raw = kept[1] if kept[0] is records and type(kept[1]) is bytes else None
        kept[0] = kept[1] = None
        if value_deserializer is not LEAN or isolation_level != read_uncommitted:
            return stock_records(tp, records, aborted, fetch_offset, key_deserializer, value_deserializer,
                                 check_crcs, isolation_level)
        lean = LeanPartitionRecords(tp, records, aborted, fetch_offset, key_deserializer, value_deserializer,
                                    check_crcs, isolation_level, raw=raw if PARSER.module is not None else None)
        lean._stock_data = raw if raw is not None else b""  # aiokafka's records read these until parsed
        return lean

    stock_getall = stock_result.getall

    def getall(self: Any, max_records: int | None = None) -> Any:
        pr = self._partition_records
        if type(pr) is not LeanPartitionRecords:
            return stock_getall(self, max_records)
        if not self.check_assignment(self._topic_partition) or not self.has_more():
            return []
        out = pr.take(max_records)
        self._update_position()
        if pr.exhausted():
            self._partition_records = None  # the fetcher asks for more of this partition now
        return out

    _stock[0] = stock_records
    f.MemoryRecords = memory_records
    f.PartitionRecords = partition_records
    stock_result.getall = getall
    _installed = True
    return True


_OFFSET = operator.attrgetter("offset")

INT64_MAX = (1 << 63) - 1


class RecordOffsetOutOfRange(ValueError):
    """A record whose offset Kafka cannot name: its batch is handed over as an :class:`UnreadableBatch`."""


def check_offsets(recs: list[Any], base: int) -> list[int]:
    """The offsets of a batch's records (aiokafka's), each its own, in order (kafka.py labels the records
    with them); :class:`RecordOffsetOutOfRange` where one lies beyond int64 or below 0.

    A record's offset is its batch's base offset plus its own offset delta, a varint the producer
    writes, and a broker that keeps batches as produced (Tansu assigns only the base) hands a hostile
    delta over as it is. aiokafka adds them in int64, so base 1 + delta 2**63 - 1 wraps round to
    -2**63: such a record was filtered out as "before the fetch offset" when it came first (its
    reading lost without a trace), and kafka.py committed a negative offset when it came last
    (benchmarks/README.md ``hostile40``). A wrapped offset is always negative (base >= 0, delta
    <= 2**63 - 1), so one comparison per record tells; the compiled parser leaves such batches here.
    Reading the offsets is what kafka.py's ``record_offsets`` did for these records; the ``min`` adds
    ~10-25 ns a record (benchmarks/kafka_stock_path_offsets.py). A record at 2**63 - 1 itself passes:
    the commit after it is bounded by the position (``_bound_resume``)."""
    offs = list(map(_OFFSET, recs))
    if not offs or min(offs) >= 0:
        return offs
    i, off = next((i, o) for i, o in enumerate(offs) if o < 0)
    delta = off - base if off - base >= -(1 << 63) else off - base + (1 << 64)  # the delta as written
    raise RecordOffsetOutOfRange(
        f"record {i} of the batch at base offset {base} has offset delta {delta}: its offset {base + delta} "
        f"lies {'beyond int64' if base + delta > INT64_MAX else 'below 0'} (Kafka offsets are 0..{INT64_MAX}), "
        f"so no offset names it")


def _records_of(batch: Any, data: bytes, at: int, size: int) -> list[Any]:
    """The records of aiokafka's ``batch`` (its bytes ``data[at:at + size]``): where aiokafka refuses
    a header key that is not UTF-8, read again with header keys decoded leniently (kafka_headers.py):
    urbanpulse reads no header, and one such key must not cost the batch's readings. Anything else
    wrong with the batch still raises (the caller hands it over as an UnreadableBatch)."""
    try:
        return list(batch)
    except UnicodeDecodeError:
        if not 0 < size <= len(data) - at:  # the bytes are not at hand: unreadable, as before
            raise
        return records_ignoring_header_keys(data[at:at + size])


def _run(data: bytes, rows: np.ndarray, pieces: list[Any], parser: ModuleType) -> RecordRun | list[Any]:
    """The :class:`RecordRun` of ``pieces`` (row ranges of the kernel's table, then a tuple of
    aiokafka's records); an empty list if there are none."""
    values: list[bytes | None] = []
    offsets: list[Any] = []
    stamps: list[Any] = []
    has_null = False
    for piece in pieces:
        if type(piece) is list:  # [first row, end row]
            first, end = piece
            part = rows[first:end]
            lens = part[:, _R_VALUE_LEN]
            values.extend(_values(data, rows, first, end, parser))
            nulls = np.flatnonzero(lens < 0)
            if len(nulls):
                has_null = True
                at = len(values) - len(part)
                for i in nulls.tolist():
                    values[at + i] = None
            offsets.append(part[:, _R_OFFSET])
            stamps.append(part[:, _R_TIMESTAMP])
        else:
            got = [r.value for r in piece]
            has_null = has_null or None in got
            values.extend(got)
            offsets.append(np.array([r.offset for r in piece], np.int64))
            stamps.append(np.array([r.timestamp for r in piece], np.int64))
    if not values:
        return []
    offs = offsets[0] if len(offsets) == 1 else np.concatenate(offsets)
    return RecordRun(values, offset_labels(offs), stamps[0] if len(stamps) == 1 else np.concatenate(stamps), has_null)


def offset_labels(offs: np.ndarray) -> range | list[int]:
    """Each record's own offset, in order: a ``range`` where they are exactly first..last, else a list.

    The ends alone do not prove that: a hostile producer's batch (kept as produced by a broker such
    as Tansu) can repeat an offset delta or go back, and deltas 0, 1, 1, 3 span 0..3 in four records,
    which a range would label 0, 1, 2, 3 (a quarantine row one off, ``hostile36``). So where the ends
    say "contiguous", the offsets must also strictly increase (n - 1 integer steps of at least 1
    summing to n - 1 are all 1): one comparison in C, ~1.6 us a run whatever its length up to 1,000."""
    n = len(offs)
    first, last = int(offs[0]), int(offs[-1])
    if last - first == n - 1 and (n < 3 or bool((offs[1:] > offs[:-1]).all())):
        return range(first, last + 1)
    return offs.tolist()


def _values(data: bytes, rows: np.ndarray, first: int, end: int, parser: ModuleType) -> list[bytes]:
    """The values of rows ``first:end`` as ``bytes`` (a null one as ``b""``): cut out of ``data``
    by one ``struct`` unpack whose format the kernel writes (~55 ns a value against ~100 for a
    slice each), else sliced one by one."""
    fmt = np.empty((end - first) * (2 * len(str(len(data))) + 2), np.uint8)  # {gap}x{length}s each at most
    k = parser.value_format(rows, first, end, fmt)
    if k > 0:
        return list(struct.Struct(fmt[:k].tobytes()).unpack_from(data, int(rows[first, _R_VALUE_START])))
    starts, lens = rows[first:end, _R_VALUE_START], np.maximum(rows[first:end, _R_VALUE_LEN], 0)
    return [data[a:b] for a, b in zip(starts.tolist(), (starts + lens).tolist())]
