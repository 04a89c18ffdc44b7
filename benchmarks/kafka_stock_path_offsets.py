"""Records per second through the Kafka source's record layer on aiokafka's path (the compiled parser
off: compressed batches, or before it is loaded), with each record's offset as kafka.py reads it
(benchmarks/README.md ``hostile40``).

hostile40 reads the offsets of aiokafka's records once in kafka_records.check_offsets, bounds-checks
them (a record beyond int64 makes its batch unreadable) and hands them to kafka.py, which read them
itself before (``record_offsets``). Run it with two source trees, alternated:

    PYTHONPATH=/tmp/main_src .venv/bin/python benchmarks/kafka_stock_path_offsets.py
    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/kafka_stock_path_offsets.py
"""

from __future__ import annotations

import argparse
import statistics
import time

from aiokafka.consumer import fetcher as f
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition

from urbanpulse.connectors import kafka_records
from urbanpulse.connectors.kafka import record_offsets
from urbanpulse.connectors.kafka_records import LEAN, install

TP = TopicPartition("t", 0)


def fetch(batches: int, per_batch: int, codec: int) -> bytes:
    """``batches`` batches (``codec``: 0 plain, 1 gzip) of ``per_batch`` canonical JSON readings."""
    out, offset = [], 0
    for _ in range(batches):
        b = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=0, producer_id=-1,
                                      producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
        for i in range(per_batch):
            value = (b'{"sensor_id":"s%d","metric":"temperature","ts":%d,"value":%d.5}'
                     % (i % 997, 1_700_000_000_000 + i, i % 40))
            b.append(i, timestamp=1_700_000_000_000 + i, key=None, value=value, headers=[])
        raw = bytearray(b.build())
        raw[0:8] = offset.to_bytes(8, "big")
        out.append(bytes(raw))
        offset += per_batch
    return b"".join(out)


def one_round(data: bytes, max_records: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    pr = f.PartitionRecords(TP, f.MemoryRecords(data), None, 0, None, LEAN, True, f.READ_UNCOMMITTED)
    n = 0
    while True:
        got = pr.take(max_records)
        if got:
            offs = getattr(got, "offsets", None)  # as kafka.py reads them, in either tree
            offs = offs if offs is not None else record_offsets(got)
            n += len(offs)
        if pr.exhausted():
            return n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--per-batch", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--max-records", type=int, default=10_000)
    args = ap.parse_args()
    assert install()
    kafka_records.PARSER.module = None  # aiokafka's records for every batch
    for name, codec in (("plain", 0), ("gzip", 1)):
        data = fetch(args.batches, args.per_batch, codec)
        rates = []
        for _ in range(args.rounds):
            n, s = one_round(data, args.max_records)
            rates.append(n / s)
        print(f"{name}: {statistics.median(rates) / 1e6:.3f} M records/s (median of {args.rounds})")


if __name__ == "__main__":
    main()
