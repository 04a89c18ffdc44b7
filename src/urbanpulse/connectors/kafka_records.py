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
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

log = logging.getLogger(__name__)


def LEAN(value: bytes | None) -> bytes | None:  # noqa: N802 - a marker, named like a constant
    """The value deserializer that asks for lean records (an identity function, so that without
    :func:`install` the consumer behaves exactly as with no deserializer)."""
    return value


_installed: bool | None = None
#: aiokafka's PartitionRecords.__init__ as this module was written against (0.11-0.14)
_RECORDS_PARAMS = ["self", "tp", "records", "aborted_transactions", "fetch_offset", "key_deserializer",
                   "value_deserializer", "check_crcs", "isolation_level"]


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
    read_uncommitted = getattr(f, "READ_UNCOMMITTED", None)
    if stock_records is None or stock_result is None or read_uncommitted is None \
            or list(inspect.signature(stock_records.__init__).parameters) != _RECORDS_PARAMS \
            or not all(hasattr(stock_result, m) for m in ("getall", "check_assignment", "_update_position", "has_more")):
        log.warning("lean Kafka records not available (aiokafka's fetcher has changed): using aiokafka's records")
        _installed = False
        return False

    class LeanPartitionRecords(stock_records):  # type: ignore[misc, valid-type]
        """A fetched partition's records, handed over as aiokafka's C-parsed records."""

        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self._rest: list[Any] = []  # records of a batch split by max_records, not yet taken
            self._rest_next = 0  # that batch's next offset

        def _unpack_records(self):  # noqa: ANN202 - aiokafka's one-at-a-time iteration, kept working
            while True:
                got = self.take(1)
                if not got:
                    return
                yield got[0]

        def exhausted(self) -> bool:
            return not self._rest and not self._records.has_next()

        def take(self, max_records: int | None) -> list[Any]:
            """Up to ``max_records`` records (all if None), advancing ``next_fetch_offset``."""
            want = max_records if max_records is not None else 1 << 62
            out: list[Any] = []
            if self._rest:
                recs, self._rest = self._rest, []
                if not self._put(out, recs, want, self._rest_next):
                    return out
            records = self._records
            while len(out) < want and records.has_next():
                batch = records.next_batch()
                if self._check_crcs and not batch.validate_crc():
                    raise CorruptRecordException(f"Invalid CRC - {self._tp}")
                if batch.is_control_batch:
                    self.next_fetch_offset = batch.next_offset
                    continue
                recs = list(batch)
                if recs and recs[0].offset < self.next_fetch_offset:  # the fetch began inside this batch
                    start = self.next_fetch_offset
                    recs = [r for r in recs if r.offset >= start]
                if not self._put(out, recs, want, batch.next_offset):
                    break
            return out

        def _put(self, out: list[Any], recs: list[Any], want: int, next_offset: int) -> bool:
            """Move ``recs`` (one batch's) into ``out`` up to ``want``; False if some are left."""
            room = want - len(out)
            if len(recs) > room:
                out.extend(recs[:room])
                self._rest, self._rest_next = recs[room:], next_offset
                self.next_fetch_offset = out[-1].offset + 1
                return False
            out.extend(recs)
            self.next_fetch_offset = next_offset
            return True

    def partition_records(tp: Any, records: Any, aborted: Any, fetch_offset: Any, key_deserializer: Any,
                          value_deserializer: Any, check_crcs: Any, isolation_level: Any) -> Any:
        cls = LeanPartitionRecords if value_deserializer is LEAN and isolation_level == read_uncommitted \
            else stock_records
        return cls(tp, records, aborted, fetch_offset, key_deserializer, value_deserializer, check_crcs,
                   isolation_level)

    stock_getall = stock_result.getall

    def getall(self: Any, max_records: int | None = None) -> list[Any]:
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

    f.PartitionRecords = partition_records
    stock_result.getall = getall
    _installed = True
    return True
