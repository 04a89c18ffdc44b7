"""Every built-in format's realistic sample with a lone surrogate put in each of its fields (and
keys) in turn, through the decode stage: how many messages lose all their readings to one
whole-message rejection, and why (benchmarks/README.md ``privq34``).

JSON formats get the JSON escape ``\\ud800`` (and ``a\\udfffb``) as a value and as a key; SenML
CBOR, line protocol and CSV, which cannot escape one, get the surrogate's UTF-8 bytes
``ED A0 80`` (not valid UTF-8). Deterministic: every field of a 6-reading sample, once each.

    PYTHONPATH=$PWD/src python benchmarks/surrogate_survey.py
"""

from __future__ import annotations

import collections
import json
import re
import sys
import time
from pathlib import Path

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from hostile_mutations import FORMATS, OPTIONS, _dump, _get, _paths, _set  # noqa: E402
from urbanpulse.formats.base import MessageBatch  # noqa: E402
from urbanpulse.pipeline.decode import DecodeStage  # noqa: E402
from urbanpulse.plugins import build_format  # noqa: E402
from urbanpulse.quality.catalogue import MetricCatalogue  # noqa: E402
from urbanpulse.quality.validate import ReadingValidator  # noqa: E402
from urbanpulse.testing.samples import sample  # noqa: E402

SURROGATES = ["\ud800", "a\udfffb"]
RAW = b"\xed\xa0\x80"


def variants(name: str, payload: bytes) -> list[bytes]:
    """The sample with a surrogate in one place, for every place."""
    out = []
    if name == "senml_cbor":
        obj = cbor2.loads(payload)
        for p in _paths(obj):
            if isinstance(_get(obj, p), str):
                out.append(cbor2.dumps(_set(obj, p, "\x01\x02\x03")).replace(b"\x01\x02\x03", RAW, 1))
        return out
    if name in ("influx_line", "csv"):
        toks = re.split(b"([ ,=\n])", payload)
        return [b"".join(toks[:k] + [toks[k] + RAW] + toks[k + 1:]) for k in range(0, len(toks), 2)]
    obj = json.loads(payload)
    for p in _paths(obj):
        if not p:
            continue
        for s in SURROGATES:
            out.append(_dump(_set(obj, p, s)).encode("utf-8", "surrogatepass"))
            parent = _get(obj, p[:-1])
            if isinstance(parent, dict):
                renamed = dict(parent)
                renamed[s] = renamed.pop(p[-1])
                out.append(_dump(_set(obj, p[:-1], renamed)).encode("utf-8", "surrogatepass"))
    return out


def main() -> None:
    """One line per format: variants, messages rejected whole (by reason), readings kept."""
    now = time.time()
    for name in FORMATS:
        opts = dict(OPTIONS.get(name) or {}, **({} if name == "json" else {"non_numeric": "reject"}))
        stage = DecodeStage(build_format(name, opts), ReadingValidator(MetricCatalogue.load()), None)
        payload, _ = sample(name, "dev-1", now, 6)
        whole: collections.Counter[str] = collections.Counter()
        kept = n = 0
        for m in variants(name, payload):
            n += 1
            v = stage.decode(MessageBatch(source="kafka", payloads=[m], topics=["t"], partitions=[0], offsets=[0],
                                          received_ns=time.time_ns()))
            kept += len(v.readings)
            for r in v.rejections:
                if r.item == -1 and not len(v.readings):
                    whole[r.reason.value + (" (UnicodeEncodeError)" if "UnicodeEncodeError" in r.detail else "")] += 1
        print(f"{name:17s} variants {n:4d}  readings kept {kept:5d}  rejected whole: {dict(sorted(whole.items()))}")


if __name__ == "__main__":
    main()
