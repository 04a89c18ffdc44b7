"""Time to frame pathological HTTP ingest bodies (32 MiB inflated: blank lines, tiny NDJSON lines, a JSON array of
0s) with the src tree given as argv[1], max_messages 10,000 when that src has the limit (robust31).

    python benchmarks/http_ingest_split.py src
"""
import sys, time
sys.path.insert(0, sys.argv[1])
from urbanpulse.http_ingest.body import split, NDJSON, JSON
from urbanpulse.errors import PayloadTooLarge
import inspect
has_limit = "max_messages" in inspect.signature(split).parameters
M = 32 * 1024 * 1024
cases = {"32MiB blank lines": (b"\n" * M, NDJSON), "32MiB {} lines": (b"{}\n" * (M // 3), NDJSON),
         "32MiB array of 0": (b"[" + b"0," * (M // 2 - 1) + b"0]", JSON)}
for name, (body, framing) in cases.items():
    t = time.perf_counter()
    try:
        m = split(body, framing, "json", 10_000) if has_limit else split(body, framing, "json")
        out = f"{len(m.payloads)} messages"
    except PayloadTooLarge:
        out = "413"
    print(f"{name}: {out} in {time.perf_counter() - t:.2f} s")
