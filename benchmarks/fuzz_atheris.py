#!/usr/bin/env python
"""Coverage-guided fuzzing of the decoders with atheris (libFuzzer for Python).

Where ``benchmarks/fuzz_decode.py`` generates inputs from a grammar of known hostility, this
lets libFuzzer mutate inputs towards new branches of urbanpulse's own Python code (the
formats, validation and the pipeline's isolation are instrumented; msgspec and the standard
library's C parts are not). Each input is split into 1-4 messages and decoded by one format
(chosen by the first byte) exactly as the service does per batch; a crash is any exception
out of the format's own ``decode``, or an accounting violation (a message or array item that
is neither a reading nor a rejection, or counted twice). A crashing input is written by
libFuzzer as ``crash-<sha1>`` in the working directory.

Needs ``pip install atheris`` (the ``fuzz`` extra). Run for a few minutes:

    .venv/bin/python benchmarks/fuzz_atheris.py -max_total_time=300 [CORPUS_DIR]

An empty CORPUS_DIR is seeded with the hostile cases of tests/test_bad_input_e2e.py and the
format fixtures' payloads.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["urbanpulse"]):
    import importlib

    from urbanpulse.config import IngestSettings
    from urbanpulse.formats.base import MessageBatch
    from urbanpulse.fuzz import canonical_units, outcomes_by_message
    from urbanpulse.metrics import IngestMetrics
    from urbanpulse.pipeline import Pipeline
    from urbanpulse.plugins import build_format
    from urbanpulse.quality.catalogue import MetricCatalogue
    from urbanpulse.quality.validate import ReadingValidator
    from urbanpulse.plugins import BUILTIN_FORMATS

    for _target in BUILTIN_FORMATS.values():  # plugins load formats lazily: import them here, instrumented
        importlib.import_module(_target.split(":")[0])

REPO = Path(__file__).resolve().parent.parent
NOW_MS = int(time.time() * 1000)
FORMATS = ["json", "json", "json", "json", "senml", "senml_cbor", "influx_line", "ttn_v3", "chirpstack_v4",
           "owntracks", "sensor_community"]
CATALOGUE = MetricCatalogue.load()
VALIDATOR = ReadingValidator(CATALOGUE)
DECODERS = {name: build_format(name, catalogue=CATALOGUE) for name in set(FORMATS)}
PIPELINES = {name: Pipeline(None, fmt, VALIDATOR, IngestSettings(), IngestMetrics())  # type: ignore[arg-type]
             for name, fmt in DECODERS.items()}


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    name = FORMATS[fdp.ConsumeIntInRange(0, len(FORMATS) - 1)]
    payloads = [fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4096)) for _ in range(fdp.ConsumeIntInRange(1, 3))]
    payloads.append(fdp.ConsumeBytes(fdp.remaining_bytes()))
    n = len(payloads)
    batch = MessageBatch(source="fuzz", payloads=payloads, topics=["fuzz"] * n, partitions=[0] * n,
                         offsets=list(range(n)), received_ns=NOW_MS * 1_000_000)
    fmt = DECODERS[name]
    decoded = fmt.decode(batch)  # an exception here is a finding (the pipeline would isolate it)
    raw_of = getattr(fmt, "raw_of", None)
    validated = VALIDATOR.validate(batch, decoded, (lambda k: raw_of(batch, decoded, k)) if raw_of else
                                   (lambda k: b""))
    got = outcomes_by_message(validated.readings.msg.tolist(), validated.readings.item.tolist(),
                              [(r.offset, r.item) for r in validated.rejections])
    for i, p in enumerate(payloads):
        if name == "json":
            if got.get(i) != canonical_units(p):
                raise AssertionError(f"accounting: message {i} {p[:200]!r}: got {got.get(i)}, "
                                     f"want {canonical_units(p)}")
        elif not got.get(i) or (-1 in got[i] and len(got[i]) > 1):
            raise AssertionError(f"{name}: message {i} {p[:200]!r} has outcomes {got.get(i)}")
    for r in validated.rejections:
        r.detail.encode("utf-8")


def seed_corpus(directory: Path) -> None:
    """Hostile cases from the e2e corpus and the format fixtures' payloads, as first inputs."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        return
    sys.path.insert(0, str(REPO / "tests"))
    from test_bad_input_e2e import CORPUS  # noqa: PLC0415

    seeds = [payload for payload, _ in CORPUS.values() if len(payload) < 100_000]
    for path in sorted((REPO / "tests" / "fixtures" / "formats").rglob("*.yaml")):
        seeds.append(path.read_bytes())
    for k, s in enumerate(seeds):
        (directory / f"seed-{k:03d}").write_bytes(b"\x00\x00" + s)  # format 0 (json), 1 message


def main() -> None:
    dirs = [a for a in sys.argv[1:] if not a.startswith("-")]
    if dirs:
        seed_corpus(Path(dirs[0]))
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
