"""input35: CPU cost of `decode` for clean line-protocol and CSV batches (500 messages x 20 lines, 2 readings each),
least CPU time of 15 calls; run it per tree, alternating, to compare main and a branch.

    PYTHONPATH=/tmp/input35_A/src python benchmarks/input35_decode_micro.py A   # A = git archive of main, B = branch
"""
import sys, time
from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.line_protocol import LineProtocolFormat
from urbanpulse.formats.csv_columns import CsvFormat
now = 1_796_000_000
lp = [("\n".join(f"air,sensor_id=s{k} temperature={k % 30},humidity={k % 90} {(now - j) * 10**9}" for j in range(20))).encode() for k in range(500)]
csvp = [("sid,ts,temp,hum\n" + "\n".join(f"s{k},{now - j},{k % 30},{k % 90}" for j in range(20))).encode() for k in range(500)]
out = []
for name, fmt, payloads in (("influx_line", LineProtocolFormat(), lp),
                            ("csv", CsvFormat({"sensor_id": "sid", "ts": "ts", "time_format": "epoch_s", "values": {"temp": "temperature", "hum": "humidity"}}), csvp)):
    b = MessageBatch(source="k", payloads=payloads, received_ns=now * 10**9)
    best = 1e9
    for _ in range(15):
        t = time.process_time(); fmt.decode(b); best = min(best, time.process_time() - t)
    out.append(f"{name} {20000 / best:,.0f} readings/CPU-s")
print(sys.argv[1], " | ".join(out))
