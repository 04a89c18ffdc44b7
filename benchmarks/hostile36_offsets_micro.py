"""record_offsets variants on aiokafka's C records of one 1,000-record batch: ns a record."""
import timeit, operator
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1, producer_epoch=-1,
                              base_sequence=-1, batch_size=1 << 30)
for o in range(1000):
    b.append(o, timestamp=1_700_000_000_000, key=None,
             value=b'{"sensor_id":"s","metric":"pm2_5","ts":1,"value":7}', headers=[])
raw = bytes(b.build())
recs = list(DefaultRecordBatch(raw))
get = operator.attrgetter("offset")
def rng(records):
    first, last = records[0].offset, records[-1].offset
    return range(first, last + 1)
def comp(records):
    return [r.offset for r in records]
def amap(records):
    return list(map(get, records))
def payloads(records):
    return [r.value if r.value is not None else b"" for r in records]
def iterate(): return list(DefaultRecordBatch(raw))
out = []
for fn in (rng, comp, amap, payloads):
    t = min(timeit.repeat(lambda: [].extend(fn(recs)), number=200, repeat=7)) / 200 / 1000 * 1e9
    out.append(f"{fn.__name__} {t:.1f}")
t = min(timeit.repeat(iterate, number=50, repeat=5)) / 50 / 1000 * 1e9
out.append(f"aiokafka_records {t:.1f}")
print(" | ".join(out), "ns/record")

import numpy as np
for n in (10, 100, 1000):
    offs = np.arange(5, 5 + n, dtype=np.int64)
    out = []
    for name, fn in (("diff_eq_all", lambda: bool((np.diff(offs) == 1).all())),
                     ("gt_all", lambda: bool((offs[1:] > offs[:-1]).all())),
                     ("gt_all_ufunc", lambda: bool(np.greater(offs[1:], offs[:-1]).all())),
                     ("tolist_sorted", lambda: len(set(offs.tolist())) == n)):
        t = min(timeit.repeat(fn, number=5000, repeat=5)) / 5000 * 1e6
        out.append(f"{name} {t:.2f}us")
    print(n, " | ".join(out))
