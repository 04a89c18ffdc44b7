"""Vendor metric names and units -> catalogue metrics and units, with the conversions that are known.

Vendors name the same quantity many ways (``SDS_P2``, ``pm25``, ``temp``) and report it in many
units (``°F``, ``mg/m3``, ``Pa``). Instead of quarantining such readings as ``unknown_metric`` or
``unit_mismatch``, a format maps the name through :class:`MetricMapper` (a shipped table,
``vendor_metrics.yaml``, extended by ``formats.metric_names`` in the config) and converts the
value when the unit differs from the catalogue's but measures the same dimension. Units with no
known conversion are left alone, so the validator still rejects them with ``unit_mismatch``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import yaml

from urbanpulse.model import ReadingColumns
from urbanpulse.quality.catalogue import MetricCatalogue

VENDOR_METRICS = Path(__file__).with_name("vendor_metrics.yaml")

#: unit spelling -> (dimension, scale, offset): value_in_base = value * scale + offset
UNITS: dict[str, tuple[str, float, float]] = {}


def _define(dimension: str, scale: float, offset: float, *names: str) -> None:
    for n in names:
        UNITS[n] = (dimension, scale, offset)


# temperature, base °C (SenML "Cel", "K"; °F as vendors write it)
_define("temperature", 1.0, 0.0, "degC", "C", "°C", "celsius", "Cel", "℃")
_define("temperature", 5.0 / 9.0, -32.0 * 5.0 / 9.0, "degF", "F", "°F", "fahrenheit", "Fah", "℉")
_define("temperature", 1.0, -273.15, "K", "kelvin")
# mass concentration, base µg/m³ (SenML "kg/m3")
_define("mass_concentration", 1.0, 0.0, "ug/m3", "µg/m3", "µg/m³", "ug/m^3", "μg/m3", "μg/m³", "ug/m³")
_define("mass_concentration", 1000.0, 0.0, "mg/m3", "mg/m³", "mg/m^3")
_define("mass_concentration", 1e6, 0.0, "g/m3", "g/m³")
_define("mass_concentration", 1e9, 0.0, "kg/m3", "kg/m³")
_define("mass_concentration", 1e-3, 0.0, "ng/m3", "ng/m³")
# pressure, base Pa
_define("pressure", 1.0, 0.0, "Pa", "pa")
_define("pressure", 100.0, 0.0, "hPa", "mbar", "mb", "millibar")
_define("pressure", 1000.0, 0.0, "kPa")
_define("pressure", 1e5, 0.0, "bar")
_define("pressure", 133.322387415, 0.0, "mmHg")
_define("pressure", 3386.389, 0.0, "inHg")
_define("pressure", 6894.757293168, 0.0, "psi")
# speed, base m/s
_define("speed", 1.0, 0.0, "m/s", "mps")
_define("speed", 1.0 / 3.6, 0.0, "km/h", "kmh", "kph")
_define("speed", 0.44704, 0.0, "mph")
_define("speed", 0.514444, 0.0, "kn", "kt", "knot", "knots")
# ratios, base percent (SenML "/" is a ratio 0..1, "%RH" and "%EL" are percent)
_define("ratio", 1.0, 0.0, "%", "percent", "%RH", "RH", "%EL")
_define("ratio", 100.0, 0.0, "/")
# length (rain), base mm
_define("length", 1.0, 0.0, "mm")
_define("length", 10.0, 0.0, "cm")
_define("length", 1000.0, 0.0, "m")
_define("length", 25.4, 0.0, "in")


def conversion(from_unit: str, to_unit: str) -> tuple[float, float] | None:
    """``(scale, offset)`` with ``to = from * scale + offset``, or None if no conversion is known."""
    a = UNITS.get(from_unit)
    b = UNITS.get(to_unit)
    if a is None or b is None or a[0] != b[0]:
        return None
    # base = v*sa + oa; to = (base - ob) / sb
    scale = a[1] / b[1]
    offset = (a[2] - b[2]) / b[1]
    return scale, offset


def load_vendor_names(path: Path = VENDOR_METRICS) -> dict[str, str]:
    """The shipped vendor-name table: lower-cased vendor name -> catalogue metric."""
    raw = yaml.safe_load(path.read_text()) or {}
    out: dict[str, str] = {}
    for metric, names in (raw.get("metrics") or {}).items():
        for n in names or ():
            out[str(n).lower()] = str(metric)
    return out


class MetricMapper:
    """Renames vendor metrics to catalogue metrics and converts units into the catalogue's.

    Works on whole :class:`ReadingColumns`: the work is per distinct (metric, unit) pair, and
    values are converted with numpy, so a batch of thousands costs a few dictionary lookups.
    """

    def __init__(self, catalogue: MetricCatalogue, extra_names: Mapping[str, str] | None = None) -> None:
        self.catalogue = catalogue
        names = load_vendor_names()
        names.update({k.lower(): v for k, v in (extra_names or {}).items()})
        self.names = names
        self.canonical_unit = {s.name: s.unit for s in catalogue.specs}
        self.allowed = {s.name: frozenset((s.unit, *s.aliases)) for s in catalogue.specs}
        self._rename: dict[str, str] = {}

    def metric_for(self, vendor: str) -> str:
        """The catalogue metric a vendor name stands for (the name itself if none is known)."""
        if vendor in self.canonical_unit:
            return vendor
        try:
            return self._rename[vendor]
        except KeyError:
            pass
        found = self.names.get(vendor.lower(), vendor)
        if len(self._rename) < 10_000:
            self._rename[vendor] = found
        return found

    def apply(self, cols: ReadingColumns) -> ReadingColumns:
        """Rename metrics and convert units in place; returns ``cols``."""
        if not len(cols):
            return cols
        known = self.canonical_unit
        metrics = cols.metric
        rename = {m: self.metric_for(m) for m in set(metrics) if m not in known}
        if rename:
            get = rename.get
            cols.metric = metrics = [get(m, m) for m in metrics]
        units = cols.unit
        if units.count(None) == len(units):
            return cols
        allowed = self.allowed
        todo: dict[tuple[str, str], tuple[str, float, float]] = {}
        for m, u in set(zip(metrics, units)):  # distinct pairs first: the usual batch needs no conversion
            if u is None:
                continue
            ok = allowed.get(m)
            if ok is None or u in ok:
                continue
            conv = conversion(u, known[m])
            if conv is not None:  # else the validator rejects it as unit_mismatch, naming the unit
                todo[(m, u)] = (known[m], *conv)
        if not todo:
            return cols
        m_arr = np.array(metrics, dtype=object)
        u_arr = np.array(units, dtype=object)
        for (m, u), (target, scale, offset) in todo.items():
            where = (u_arr == u) & (m_arr == m)  # object comparisons, in C
            cols.value[where] = cols.value[where] * scale + offset
            u_arr[where] = target
        cols.unit = u_arr.tolist()
        return cols
