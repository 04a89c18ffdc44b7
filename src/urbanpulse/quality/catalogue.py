"""The metric catalogue: which metrics exist, their unit and physically possible range."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from urbanpulse.errors import ConfigError

DEFAULT_CATALOGUE = Path(__file__).with_name("metrics.yaml")
#: PyYAML's safe loader, libyaml's C parser where PyYAML was built with it: the same documents and
#: types; the shipped catalogue read in 0.5-1 ms instead of 5-6 ms at every start (``spawn20``)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


#: the largest magnitude a stored value may have, whatever the catalogue says. The rollups merge
#: running means and sums of squared deviations in PostgreSQL float8, which raises "value out of
#: range: overflow" (a permanent write error: the batch is parked, its source halted) where numpy
#: would give inf; with |value| <= 1e100 a squared deviation times any count stays below 1e240. A
#: metric configured with ``min: -.inf, max: .inf`` let two readings of +-1e200 halt their source
#: for good (benchmarks/README.md ``robust30``)
MAX_ABS_VALUE = 1e100
#: the smallest magnitude a stored value other than zero may have, for the same reason the other
#: way: float8 raises "value out of range: underflow" when a product of non-zero numbers rounds to
#: zero, as the squared difference of two means does below ~1e-162. With the shipped catalogue a
#: pm2_5 reading of 0 and one of 1e-200 in the same minute (two batches) halted their source for
#: good (``robust30``). Non-zero values at least this large differ by at least ~1e-116, whose
#: square times any count's ratio stays far from zero
MIN_ABS_VALUE = 1e-100


@dataclass(frozen=True)
class MetricSpec:
    """One catalogue entry."""

    name: str
    unit: str
    min: float
    max: float
    aliases: tuple[str, ...] = ()


class MetricCatalogue:
    """Metric lookups as arrays so validation of a batch is a handful of numpy operations."""

    def __init__(self, specs: list[MetricSpec]) -> None:
        self.specs = specs
        self.index: dict[str, int] = {s.name: i for i, s in enumerate(specs)}
        # index len(specs) is the "unknown metric" slot: a range no value satisfies; every other
        # range within +-MAX_ABS_VALUE
        self.low = np.array([max(s.min, -MAX_ABS_VALUE) for s in specs] + [np.inf], dtype=np.float64)
        self.high = np.array([min(s.max, MAX_ABS_VALUE) for s in specs] + [-np.inf], dtype=np.float64)
        self.units: list[frozenset[str]] = [frozenset((s.unit, *s.aliases)) for s in specs]

    @classmethod
    def load(cls, path: Path | None = None, extra: dict[str, Any] | None = None) -> MetricCatalogue:
        """Read the catalogue YAML (default: the shipped one) plus metrics from the config."""
        path = path or DEFAULT_CATALOGUE
        try:
            raw = yaml.load(path.read_text(), Loader=_SAFE_LOADER) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read metric catalogue {path}: {exc}; fix validation.catalogue") from exc
        entries = dict(raw.get("metrics") or {})
        entries.update(extra or {})
        specs = []
        for name, entry in entries.items():
            try:
                specs.append(MetricSpec(name=name, unit=str(entry["unit"]), min=float(entry["min"]),
                                        max=float(entry["max"]), aliases=tuple(map(str, entry.get("aliases", ())))))
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(
                    f"metric {name!r} in {path} needs `unit`, numeric `min` and `max` ({exc})") from exc
            if specs[-1].min > specs[-1].max:
                raise ConfigError(f"metric {name!r}: min {specs[-1].min} is above max {specs[-1].max}")
        return cls(specs)

    def lookup(self, metrics: list[str]) -> np.ndarray:
        """Catalogue index per metric name; ``len(specs)`` for unknown names."""
        unknown = len(self.specs)
        get = self.index.get
        n = len(metrics)
        # one metric in the batch (a topic per metric, the throughput benchmark): compared in C, no
        # string hashed per reading (the names are fresh objects from the decoder, their hashes
        # not yet computed): ~8 instead of ~46 ns a reading (benchmarks/README.md ``spawn18``)
        if n and metrics[-1] == metrics[0] and metrics.count(metrics[0]) == n:
            return np.full(n, get(metrics[0], unknown), dtype=np.int32)
        # a batch names few distinct metrics: look each up once, then map the batch in C
        found = {m: get(m, unknown) for m in set(metrics)}
        return np.fromiter(map(found.__getitem__, metrics), dtype=np.int32, count=len(metrics))
