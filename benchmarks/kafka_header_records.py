"""Records per second through the Kafka source's record layer (kafka_records' lean path, the compiled
parser where it takes a batch) for batches whose records carry headers, against the same batches
without headers, in one process (benchmarks/README.md ``hdrlean39``).

Why: many producers add headers (a trace id, a content type). urbanpulse reads none, but until
hdrlean39 one header ended the compiled parser's part of a fetch, so every such record took
aiokafka's one-object-per-record path. Run it with two source trees to compare them in one sitting:

    PYTHONPATH=/tmp/main_src .venv/bin/python benchmarks/kafka_header_records.py
    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/kafka_header_records.py
"""

from __future__ import annotations

import argparse
import statistics
import time

from aiokafka.consumer import fetcher as f
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition

from urbanpulse.connectors.kafka_records import LEAN, install, load_parser

TP = TopicPartition("t", 0)
TRACE = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), ("content-type", b"json")]


def fetch(headers: list[tuple[str, bytes]], batches: int, per_batch: int) -> bytes:
    """A fetch response's records: ``batches`` plain batches of ``per_batch`` canonical JSON readings."""
    parts, base = [], 0
    for _ in range(batches):
        b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                      producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
        for i in range(per_batch):
            value = b'{"sensor_id":"s-%d","metric":"temperature","ts":1700000000000,"value":%d.5}' % (i, i)
            b.append(i, timestamp=1_700_000_000_000 + i, key=None, value=value, headers=headers)
        raw = bytearray(b.build())
        raw[0:8] = base.to_bytes(8, "big")
        base += per_batch
        parts.append(bytes(raw))
    return b"".join(parts)


def records_per_second(data: bytes, max_records: int) -> float:
    """One pass of the fetch through the fetcher's factories as the Kafka source calls them."""
    t = time.perf_counter()
    n = 0
    pr = f.PartitionRecords(TP, f.MemoryRecords(data), None, 0, None, LEAN, True, f.READ_UNCOMMITTED)
    while not pr.exhausted():
        got = pr.take(max_records)
        if not got:
            break
        n += len(got)
    return n / (time.perf_counter() - t)


def main() -> None:
    """Alternate plain and header fetches ``--rounds`` times; print the medians and their ratio."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--per-batch", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--max-records", type=int, default=10_000, help="the source's getmany max_records")
    args = ap.parse_args()
    assert install() and load_parser() is not None, "the compiled record parser did not load"
    plain, headed = fetch([], args.batches, args.per_batch), fetch(TRACE, args.batches, args.per_batch)
    runs: dict[str, list[float]] = {"plain": [], "headers": []}
    for _ in range(args.rounds):
        runs["plain"].append(records_per_second(plain, args.max_records))
        runs["headers"].append(records_per_second(headed, args.max_records))
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"plain {med['plain'] / 1e6:.2f} M records/s, with headers {med['headers'] / 1e6:.2f} M records/s, "
          f"headers / plain {med['headers'] / med['plain']:.3f} (medians of {args.rounds})")


if __name__ == "__main__":
    main()
