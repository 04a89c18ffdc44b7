"""CSV with a declared column mapping (``csv``): each message is CSV text (RFC 4180 quoting).

The mapping is the format's options, because a CSV file says nothing about itself:

- ``sensor_id``: a column name, or ``sensor_id_value`` for a fixed id;
- time: ``ts`` a column or a list of columns joined with spaces (``[year, month, day, hour]``),
  read with ``time_format``: ``rfc3339``, ``epoch_s``, ``epoch_ms`` or a strptime pattern
  (``%Y %m %d %H``) in ``timezone`` (IANA name, default UTC);
- values, either long (``metric`` + ``value`` columns, optional ``unit``) or wide
  (``values: {column: metric}``, one reading per mapped column and row);
- optional ``lat``/``lon`` columns; ``header: true`` when each message starts with a header row
  (else ``fieldnames`` names the columns).

Empty cells and ``NA``/``NaN`` in a value column are missing values: the reading is skipped
(``missing: skip``) or quarantined as ``missing_value``.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from urbanpulse.formats.base import Decoded, MessageBatch
from urbanpulse.formats.csv_as_sent import ROW_OF_MESSAGE, CsvBodyAsSent
from urbanpulse.formats.vendor import DecodeFailure, FormatOptions, Rows, VendorFormat, parse_time
from urbanpulse.model import Reason, Rejection

_MISSING = {"", "na", "nan", "null", "none", "-"}


class CsvOptions(FormatOptions):
    """The declared column mapping."""

    delimiter: str = Field(",", min_length=1, max_length=1)
    header: bool = True
    fieldnames: list[str] | None = None
    sensor_id: str | None = Field(None, description="column holding the sensor id")
    sensor_id_value: str | None = Field(None, description="fixed sensor id when no column holds it")
    ts: str | list[str] = Field("ts", description="time column, or columns joined with spaces")
    time_format: str = Field("rfc3339", description="rfc3339, epoch_s, epoch_ms or a strptime pattern")
    timezone: str = "UTC"
    metric: str | None = Field(None, description="long form: column holding the metric name")
    value: str | None = Field(None, description="long form: column holding the value")
    unit: str | None = Field(None, description="long form: column holding the unit")
    values: dict[str, str] = Field(default_factory=dict, description="wide form: column -> metric")
    value_units: dict[str, str] = Field(default_factory=dict, description="wide form: column -> unit")
    lat: str | None = None
    lon: str | None = None
    missing: Literal["skip", "reject"] = "skip"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @model_validator(mode="after")
    def _shape(self) -> CsvOptions:
        if not self.values and not (self.metric and self.value):
            raise ValueError("declare either `values` (wide: column -> metric) or `metric` and `value` columns")
        if not self.sensor_id and not self.sensor_id_value:
            raise ValueError("declare `sensor_id` (a column) or `sensor_id_value` (a fixed id)")
        if not self.header and not self.fieldnames:
            raise ValueError("without a header row, `fieldnames` must name the columns")
        return self


class CsvFormat(VendorFormat):
    """CSV rows to readings through the declared mapping."""

    name = "csv"
    Options = CsvOptions
    time_unit = "declared"
    _last_body: CsvBodyAsSent | None = None

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - VendorFormat's
        super().__init__(*args, **kwargs)
        self._zone = ZoneInfo(self.options.timezone)

    def decode_message(self, batch: MessageBatch, i: int, payload: bytes, now_us: float, rows: Rows,
                       rejections: list[Rejection]) -> None:
        escaped = False
        try:
            text = payload.decode("utf-8-sig")
        except UnicodeDecodeError:  # rare: only then is each row checked on its own (see _not_utf8)
            text = payload.decode("utf-8-sig", "surrogateescape")
            escaped = True
        if "\x00" in text:
            raise DecodeFailure(Reason.MALFORMED, "NUL byte in CSV text")
        opts = self.options
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=opts.delimiter, strict=True)
        try:
            lines = list(reader)
        except csv.Error as exc:
            raise DecodeFailure(Reason.MALFORMED, f"CSV syntax: {exc}") from None
        if opts.header:
            if not lines:
                raise DecodeFailure(Reason.EMPTY_PAYLOAD, "no header row")
            names, body, first = lines[0], lines[1:], 2
            if escaped and (why := _not_utf8(names)) is not None:
                raise DecodeFailure(Reason.INVALID_UTF8, f"the header row is not UTF-8 ({why}); every row is read "
                                    "through it, so the message is refused whole: send the header as UTF-8")
        else:
            names, body, first = list(opts.fieldnames or []), lines, 1
        col = {n.strip(): k for k, n in enumerate(names)}
        needed = [c for c in self._columns() if c not in col]
        if needed:
            raise DecodeFailure(Reason.MISSING_FIELD, f"columns {needed} declared in the mapping are not in the CSV")
        ts_cols = [opts.ts] if isinstance(opts.ts, str) else opts.ts
        ts_idx = [col[c] for c in ts_cols]
        sensor_idx = col[opts.sensor_id] if opts.sensor_id else None
        any_row = False
        for r, line in enumerate(body):
            if not line or all(not cell.strip() for cell in line):
                continue
            any_row = True
            j = first + r - 1
            if escaped and (why := _not_utf8(line)) is not None:  # the row refused, its neighbours kept
                rejections.append(self.reject(batch, i, Reason.INVALID_UTF8, f"row {first + r} is not UTF-8: {why}",
                                              self.row_as_sent(payload, j), j))
                continue
            if len(line) != len(names):
                rejections.append(self.reject(batch, i, Reason.MALFORMED, f"row {first + r}: {len(line)} cells, header "
                                              f"has {len(names)}", self.row_as_sent(payload, j), j))
                continue
            # only spaces and tabs around a cell are CSV layout (str.strip() also ate control characters such as
            # \x1f, so such an id was stored where every other format quarantines it bad_sensor_id)
            sensor = line[sensor_idx].strip(" \t") if sensor_idx is not None else opts.sensor_id_value
            if not sensor or len(sensor) > 128:
                what = "no sensor id" if not sensor else "sensor id longer than 128 characters"
                rejections.append(self.reject(batch, i, Reason.BAD_SENSOR_ID, f"row {first + r}: {what}",
                                              self.row_as_sent(payload, j), j))
                continue
            ts_us = self._time(" ".join(line[k].strip() for k in ts_idx))
            if ts_us is None:
                rejections.append(self.reject(batch, i, Reason.BAD_TIMESTAMP,
                                              f"row {first + r}: time not in {opts.time_format}",
                                              self.row_as_sent(payload, j), j))
                continue
            lat = _num(line[col[opts.lat]]) if opts.lat else None
            lon = _num(line[col[opts.lon]]) if opts.lon else None
            if opts.values:
                pairs = [(metric, line[col[c]], opts.value_units.get(c)) for c, metric in opts.values.items()]
            else:
                unit = line[col[opts.unit]].strip() or None if opts.unit else None
                pairs = [(line[col[opts.metric]].strip(), line[col[opts.value]], unit)]  # type: ignore[index]
            for metric, cell, unit in pairs:
                if cell.strip().lower() in _MISSING:
                    if opts.missing == "reject":
                        rejections.append(self.reject(batch, i, Reason.MISSING_VALUE,
                                                      f"row {first + r}: {metric} is empty",
                                                      self.row_as_sent(payload, j), j))
                    continue
                number = _num(cell)
                if number is None:
                    rejections.append(self.reject(batch, i, Reason.BAD_TYPE,
                                                  f"row {first + r}: {metric}={cell[:40]!r} is not a number",
                                                  self.row_as_sent(payload, j), j))
                    continue
                if not metric or len(metric) > 128:
                    rejections.append(self.reject(batch, i, Reason.MISSING_FIELD, f"row {first + r}: no metric",
                                                  self.row_as_sent(payload, j), j))
                    continue
                rows.add(i, j, sensor, metric, ts_us, number, unit, lat, lon, ROW_OF_MESSAGE)
        if not any_row:
            raise DecodeFailure(Reason.EMPTY_PAYLOAD, "no data rows")

    def row_as_sent(self, payload: bytes, record: int) -> bytes:
        """Record ``record`` of ``payload`` as the bytes it arrived as (urbanpulse.formats.csv_as_sent). The
        last message's rows are kept: a batch's rejections ask for the rows of one message after another."""
        last = self._last_body
        if last is None or last.payload is not payload:
            last = self._last_body = CsvBodyAsSent(payload, self.options.delimiter)
        return last.row(record)

    def raw_of(self, batch: MessageBatch, decoded: Decoded, k: int) -> bytes:
        """What to quarantine for reading ``k`` (rejected after decoding, e.g. out of range): its row as sent."""
        raw = decoded.raw_items[k] if k < len(decoded.raw_items) else None
        if raw is ROW_OF_MESSAGE:
            payload = batch.payloads[int(decoded.columns.msg[k])]
            if type(payload) is bytes:
                return self.row_as_sent(payload, int(decoded.columns.item[k]))
            return bytes(payload)
        return super().raw_of(batch, decoded, k)

    def _columns(self) -> list[str]:
        o = self.options
        cols = [o.ts] if isinstance(o.ts, str) else list(o.ts)
        cols += [c for c in (o.sensor_id, o.metric, o.value, o.unit, o.lat, o.lon) if c]
        return cols + list(o.values)

    def _time(self, text: str) -> float | None:
        fmt = self.options.time_format
        if fmt == "rfc3339":
            return parse_time(text)
        if fmt in ("epoch_s", "epoch_ms"):
            number = _num(text)
            return None if number is None else number * (1e6 if fmt == "epoch_s" else 1e3)
        try:
            dt = datetime.strptime(text, fmt)
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=self._zone)
        return dt.timestamp() * 1e6


def _not_utf8(cells: list[str]) -> str | None:
    """Why a row of a message decoded with ``surrogateescape`` is not UTF-8 (None: it is).

    A message with invalid UTF-8 is decoded with each bad byte kept as a lone surrogate (valid
    UTF-8 never decodes to one), parsed as CSV as usual (a quoted field may span lines), and only
    the rows holding such a byte are refused, with their bytes as received. Before, one bad byte
    in one row quarantined every row of the message (benchmarks/README.md ``input35``)."""
    for k, cell in enumerate(cells):
        if cell.isascii():
            continue
        try:
            cell.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = cell[exc.start:exc.end].encode("utf-8", "surrogateescape")
            return f"cell {k + 1} has the byte(s) {bad.hex(' ')} (not UTF-8)"
    return None


def _num(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None
