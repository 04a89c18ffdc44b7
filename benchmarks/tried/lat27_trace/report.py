"""Per-batch stages from a trace written by sitecustomize.py beside it (benchmarks/README.md ``lat27``).

Usage: ``python report.py /tmp/lat27/trace/trace-PID.json``. Prints p50/p90/p99 per stage: age (first
reading added -> formed), queue (handed to the writers -> a writer took it), copy (taken -> commit-order
wait begins: analysis wait, encoding, BEGIN, COPY), turn (the commit-order wait), aw (alert writes),
mark (rollup marks), commit (COMMIT and whatever runs before the ack ledger hears of it), and the three
parts of the last: COMMIT round trip, the rollup buffer's bookkeeping, and the rest (the pool's reset
before ``lat27``)."""
import bisect
import json
import sys


def q(v: list[float]) -> str:
    v = sorted(v)
    return (f"p50 {v[len(v) // 2] * 1e3:6.1f} p90 {v[int(.9 * len(v))] * 1e3:6.1f} "
            f"p99 {v[int(.99 * len(v))] * 1e3:6.1f} mean {sum(v) / len(v) * 1e3:6.1f} ms")


def main(path: str) -> None:
    ev = json.load(open(path))["ev"]
    by = {k: {e[1]: e for e in ev if e[0] == k} for k in ("form", "write", "turn", "commit", "aw")}
    fins = [e for e in ev if e[0] == "fin"]
    afters = sorted((e for e in ev if e[0] == "after"), key=lambda e: e[1])
    commits = sorted(e[2] for e in ev if e[0] == "commit")
    stages: dict[str, list[float]] = {k: [] for k in ("age", "queue", "copy", "turn", "aw", "mark", "commit", "total")}
    for s, f in sorted(by["form"].items()):
        w, tu, c = by["write"].get(s), by["turn"].get(s), by["commit"].get(s)
        if not (w and tu and c):
            continue
        fin = min((x for x in fins if x[3] == tu[4] and x[2] >= tu[3]), key=lambda x: x[2], default=None)
        if fin is None:
            continue
        a = by["aw"].get(s)
        aw = a[3] - a[2] if a else 0.0
        for k, v in (("age", f[3] - f[2]), ("queue", w[2] - f[4]), ("copy", tu[2] - w[2]), ("turn", tu[3] - tu[2]),
                     ("aw", aw), ("mark", fin[2] - tu[3] - aw), ("commit", c[2] - fin[2]), ("total", c[2] - f[2])):
            stages[k].append(v)
    for k, v in stages.items():
        print(f"{k:8s} {q(v)}")
    starts = [a[1] for a in afters]
    rtt, book, rest = [], [], []
    for f in fins:
        i = bisect.bisect_left(starts, f[2])
        if i < len(afters):
            a = afters[i]
            rtt.append(a[1] - f[2])
            book.append(a[2] - a[1])
            j = bisect.bisect_left(commits, a[2])
            if j < len(commits):
                rest.append(commits[j] - a[2])
    print(f"COMMIT round trip {q(rtt)}\nrollup bookkeeping {q(book)}\nthen -> ack ledger {q(rest)}")


if __name__ == "__main__":
    main(sys.argv[1])
