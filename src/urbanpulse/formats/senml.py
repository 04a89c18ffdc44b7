"""SenML (RFC 8428): JSON packs (``senml``) and CBOR packs (``senml_cbor``, RFC 8428 §6).

A pack is an array of records. Base fields (``bn`` name, ``bt`` time, ``bu`` unit, ``bv`` value,
``bs`` sum) apply to the record they are in and to every later record until changed (§4.1).
Resolution (§4.6): name = bn + n, time = bt + t, unit = u or bu, value = bv + v. Times are epoch
**seconds**; a resolved time below 2**28 is relative to now (the time the message was received),
so ``t: -5`` means five seconds ago (§4.5.3).

Mapping to readings (options): the sensor id is the base name without its trailing separator
(``urn:dev:ow:10e2073a01080063:`` -> ``urn:dev:ow:10e2073a01080063``) and the metric is ``n``
(through the vendor-name table, e.g. ``temp`` -> ``temperature``). A record without ``n``
(the §5.1.3 example) takes its metric from its unit (``%RH`` -> humidity, ``Cel`` ->
temperature, ``%EL`` -> battery). Records with the units ``lat`` / ``lon`` (the SenML units
registry, §12.1) are positions, not readings: they set ``lat``/``lon`` of the other readings of
the same sensor at the same time, the way §5.1.3 reports a moving humidity sensor.
Only numeric values (``v``, or ``s`` sums) are readings; ``vs``/``vb``/``vd`` are skipped (or
rejected with ``non_numeric: reject``). Labels ending in ``_`` are must-understand (§4.4): a
pack carrying one is rejected, since this decoder understands none. A record that is not an
object, or has a field of the wrong type (a lone surrogate ``"\\ud800"`` included), is rejected
alone, and so is a later record that resolves against a base field it could not set; the pack's
other records are kept.

The JSON path decodes the whole pack with one typed msgspec call; the resolution loop touches
each record once with plain attribute reads.
"""

from __future__ import annotations

import io
import math
import time
from operator import attrgetter
from typing import Any

import cbor2
import msgspec
import numpy as np
from pydantic import Field

from urbanpulse.formats import duplicate_keys
from urbanpulse.formats.base import Decoded, MessageBatch, array_item_spans
from urbanpulse.formats.vendor import DecodeFailure, FormatOptions, Rows, VendorFormat, json_bytes
from urbanpulse.model import ReadingColumns, Reason, Rejection

#: RFC 8428 §4.5.3: times below 2**28 are relative to the current time
RELATIVE_LIMIT = 2.0 ** 28

#: RFC 8428 §6, Table 4: CBOR labels
CBOR_LABELS = {-1: "bver", -2: "bn", -3: "bt", -4: "bu", -5: "bv", -6: "bs", 0: "n", 1: "u", 2: "v", 3: "vs",
               4: "vb", 5: "s", 6: "t", 7: "ut", 8: "vd"}


class Record(msgspec.Struct, omit_defaults=True):
    """One SenML record as it appears in a JSON pack (RFC 8428 §4, Table 1)."""

    bn: str | None = None
    bt: float | None = None
    bu: str | None = None
    bv: float | None = None
    bs: float | None = None
    bver: int | None = None
    n: str | None = None
    u: str | None = None
    v: float | None = None
    vs: str | None = None
    vb: bool | None = None
    vd: str | None = None
    s: float | None = None
    t: float | None = None
    ut: float | None = None


class SenmlOptions(FormatOptions):
    """How SenML names and units become sensor ids and metrics."""

    separators: str = Field(":/.-_", description="characters stripped from the end of a base name to form the sensor id")
    metric_by_unit: dict[str, str] = Field(
        default_factory=lambda: {"%RH": "humidity", "Cel": "temperature", "%EL": "battery", "Pa": "pressure",
                                 "hPa": "pressure", "dB": "noise_db", "m/s": "wind_speed", "mm": "rain",
                                 "ug/m3": "pm2_5"},
        description="metric of a record that has no name part, by its unit")
    sensor_id: str | None = Field(None, description="fixed sensor id for every record (e.g. from a webhook path)")


_PACK = msgspec.json.Decoder(list[Record])
_ENCODE = msgspec.json.Encoder().encode
_NAME, _UNIT = attrgetter("n"), attrgetter("u")
#: the labels a record is made of (any other label is ignored, RFC 8428 §4.4)
_LABELS = frozenset(Record.__struct_fields__)
#: base fields: they apply to the records after theirs too (§4.1)
_BASE = frozenset({"bn", "bt", "bu", "bv", "bs", "bver"})


class Broken:
    """A record that is not an object or has a field of the wrong type: its usable base fields
    still apply to the records after it, it is rejected alone, and so is every later record that
    needs a base field it could not set (until a record sets that field again)."""

    __slots__ = ("reason", "detail", "raw", "bad_base")

    def __init__(self, reason: Reason, detail: str, raw: bytes, bad_base: frozenset[str]) -> None:
        self.reason = reason
        self.detail = detail
        self.raw = raw
        self.bad_base = bad_base


class RecordsAsSent:
    """The records of one JSON pack as the bytes they arrived as, found when the first is needed.

    A rejected record is quarantined as sent, not re-encoded from its parsed form: re-encoding
    wrote ``NaN`` / ``Infinity`` / ``1e309`` as ``null`` (a row saying ``non_finite`` over a
    ``"v":null``), turned ``1`` into ``1.0`` and dropped the labels the decoder ignores, so the
    row did not show the sender what to fix."""

    __slots__ = ("payload", "_spans", "_text", "cbor")

    def __init__(self, payload: bytes | None, cbor: bool = False) -> None:
        self.payload = payload  # None: nothing to slice
        self._spans: list[tuple[int, int]] | None = None
        self._text = ""
        self.cbor = cbor  # a CBOR pack: records are byte spans of its array (newcomer46)

    def of(self, j: int) -> bytes | None:
        """Record ``j`` as received, or None when it cannot be found (the caller re-encodes)."""
        if self.payload is None:
            return None
        if self.cbor:
            if self._spans is None:
                self._spans = cbor_item_spans(self.payload) or []
            if j >= len(self._spans):
                return None
            a, b = self._spans[j]
            return self.payload[a:b]
        if self._spans is None:
            try:
                self._text = self.payload.decode("utf-8")
            except UnicodeDecodeError:
                self.payload = None
                return None
            self._spans = array_item_spans(self._text) or []
        if j >= len(self._spans):
            return None
        a, b = self._spans[j]
        return self._text[a:b].encode("utf-8")


#: CBOR's self-described tag (RFC 8949 §3.4.6), which a pack may start with
_SELF_DESCRIBED = b"\xd9\xd9\xf7"


def cbor_item_spans(payload: bytes) -> list[tuple[int, int]] | None:
    """The byte spans of the items of the CBOR array ``payload`` is (definite or indefinite length,
    optionally self-described), each item decoded once to find its end; None when it is not one.
    Only asked for when a record of the pack is rejected."""
    try:
        at = len(_SELF_DESCRIBED) if payload.startswith(_SELF_DESCRIBED) else 0
        head = payload[at]
        if head >> 5 != 4:  # major type 4: array
            return None
        info = head & 31
        at += 1
        if info < 24:
            n: int | None = info
        elif info in (24, 25, 26, 27):
            size = 1 << (info - 24)
            n = int.from_bytes(payload[at:at + size], "big")
            at += size
        elif info == 31:
            n = None
        else:
            return None
        fp = io.BytesIO(payload)
        fp.seek(at)
        decoder = cbor2.CBORDecoder(fp)
        spans: list[tuple[int, int]] = []
        while n is None or len(spans) < n:
            start = fp.tell()
            if n is None and payload[start:start + 1] == b"\xff":
                break
            decoder.decode()
            spans.append((start, fp.tell()))
        return spans
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, MemoryError, EOFError, IndexError,
            RecursionError):
        return None


class SenmlJsonFormat(VendorFormat):
    """SenML JSON packs (``application/senml+json``)."""

    name = "senml"
    Options = SenmlOptions
    time_unit = "s"
    #: whether a rejected record is quarantined as the bytes it arrived as (JSON and CBOR packs)
    records_as_sent = True
    #: whether a pack is CBOR (its records are spans of its array's bytes), not JSON text
    cbor = False
    _last_pack: RecordsAsSent | None = None

    def as_sent(self, payload: bytes) -> RecordsAsSent:
        """The records of ``payload`` as received; the last pack's is kept, since a batch's
        validation rejections ask for the records of one pack after another."""
        last = self._last_pack
        if last is not None and last.payload is payload:
            return last
        pack = RecordsAsSent(payload if self.records_as_sent else None, cbor=self.cbor)
        self._last_pack = pack
        return pack

    def raw_of(self, batch: MessageBatch, decoded: Decoded, k: int) -> bytes:
        """Reading ``k``'s record as it arrived in its pack (see :class:`RecordsAsSent`)."""
        if self.records_as_sent and k < len(decoded.raw_items) and decoded.raw_items[k] is not None:
            payload = batch.payloads[int(decoded.columns.msg[k])]
            if type(payload) is bytes:
                got = self.as_sent(payload).of(int(decoded.columns.item[k]))
                if got is not None:
                    return got
        return super().raw_of(batch, decoded, k)

    def decode(self, batch: MessageBatch) -> Decoded:
        """Whole-batch fast path for clean packs (numpy columns), else message by message."""
        fast = self._decode_fast(batch)
        return fast if fast is not None else super().decode(batch)

    def _decode_fast(self, batch: MessageBatch) -> Decoded | None:
        """Every pack decoded in C by one typed msgspec call, resolved with numpy over the whole
        batch. Returns None as soon as anything is unusual (a base field changing inside a pack,
        positions, non-numeric values, must-understand labels, ...); the per-message path then
        decides, so both paths give the same readings."""
        payloads = batch.payloads
        if not payloads or type(payloads[0]) is not bytes:
            return None
        max_bytes = self.limits.max_payload_bytes
        decode = _PACK.decode
        try:
            packs = [decode(p) if 0 < len(p) <= max_bytes and b'_"' not in p else None for p in payloads]
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, TypeError):
            return None
        if None in packs:
            return None
        lengths = np.fromiter(map(len, packs), dtype=np.int64, count=len(packs))
        if not lengths.all():
            return None
        recs = [r for pack in packs for r in pack]
        firsts = [pack[0] for pack in packs]
        total = len(recs)
        # base fields only in the first record of each pack (the normal shape). Counting '"b' in
        # the bytes (every base label starts with b) settles it in C when nothing else starts with
        # b and no key is \u-escaped; otherwise look at every later record.
        in_firsts = sum((r.bn is not None) + (r.bt is not None) + (r.bu is not None) + (r.bv is not None)
                        + (r.bs is not None) + (r.bver is not None) for r in firsts)
        data = b"".join(payloads)  # each pack starts with [ and ends with ]: no token spans two
        if b"\\" in data:  # an escape may spell a key twice two ways (formats/duplicate_keys.py): per message
            return None
        quick = data.count(b'"b') == in_firsts
        if not quick and len(recs) > len(packs) and any(
                r.bn is not None or r.bt is not None or r.bu is not None or r.bv is not None or r.bs is not None
                or r.bver is not None for pack in packs for r in pack[1:]):
            return None
        if any(r.bver is not None and r.bver > 10 for r in firsts):
            return None
        v = np.array([r.v for r in recs], dtype=np.float64)
        if np.isnan(v).any():  # a record without v (sum, string, missing): per-message path
            return None
        t = np.array([r.t for r in recs], dtype=np.float64)
        # a key sent twice (formats/duplicate_keys.py): the quote characters sent against those the records
        # account for (here every record has v, no later one a base field): 2 per key, 2 per string (bn, bu, n,
        # u). Any difference (a repeat, an unknown label, an explicit null): the per-message path looks
        ns = list(map(_NAME, recs))
        units = list(map(_UNIT, recs))
        n_named = total - ns.count(None)
        n_unit = total - units.count(None)
        strings_first = sum((r.bn is not None) + (r.bu is not None) for r in firsts)
        if data.count(b'"') != 2 * (total + int(np.count_nonzero(~np.isnan(t))) + 2 * n_named + 2 * n_unit
                                    + in_firsts + strings_first):
            return None
        np.nan_to_num(t, copy=False, nan=0.0)
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        msg = np.repeat(np.arange(len(packs), dtype=np.int32), lengths)
        item = (np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)).astype(np.int32)
        bt = np.array([r.bt if r.bt is not None else 0.0 for r in firsts], dtype=np.float64)
        bv = np.array([r.bv if r.bv is not None else 0.0 for r in firsts], dtype=np.float64)
        ts_s = t + bt[msg]
        if not np.isfinite(ts_s).all():
            return None
        relative = ts_s < RELATIVE_LIMIT
        if relative.any():
            now_s = (batch.received_ns / 1e9) if batch.received_ns else time.time()
            ts_s[relative] += now_s
        value = v + bv[msg] if bv.any() else v
        base_units = [r.bu for r in firsts]
        if any(base_units):
            bu = [base_units[m] for m in msg.tolist()]
            units = [u if u is not None else b for u, b in zip(units, bu)]
        if "lat" in units or "lon" in units:
            return None
        opts = self.options
        seps = opts.separators
        bns = [r.bn or "" for r in firsts]
        # the usual pack: sensor from the base name, metric = n (an empty n is no name part, as
        # on the per-message path: the metric then comes from the unit)
        if None not in ns and "" not in ns and all(bns):
            per_pack = [bn.rstrip(seps) or bn for bn in bns]
            sensor = [per_pack[m] for m in msg.tolist()]
            metric = ns
        else:
            names: dict[tuple[str, str | None], tuple[str, str | None]] = {}
            sensor = []
            metric = []
            by_unit = opts.metric_by_unit
            for n_, m, u in zip(ns, msg.tolist(), units):
                key = (bns[m], n_)
                split = names.get(key)
                if split is None:
                    split = names[key] = self._split(key[0], key[1], seps)
                s, me = split
                if me is None:
                    me = by_unit.get(u) if u is not None else None
                    if me is None:
                        return None
                if not s:
                    return None
                sensor.append(s)
                metric.append(me)
        if opts.sensor_id is not None:
            sensor = [opts.sensor_id] * total
        n = total
        columns = ReadingColumns(
            sensor_id=sensor, metric=metric, ts_us=ts_s * 1e6, value=value,
            lat=np.full(n, np.nan), lon=np.full(n, np.nan), unit=units, msg=msg, item=item,
            has_null_value=np.zeros(n, dtype=bool))
        return Decoded(columns=self.mapper.apply(columns), rejections=[], raw_items=recs)

    def decode_message(self, batch: MessageBatch, i: int, payload: bytes, now_us: float, rows: Rows,
                       rejections: list[Rejection]) -> None:
        broken: dict[int, Broken] = {}
        try:
            records = _PACK.decode(payload)
            quotes = _ENCODE(records).count(b'"')
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
            records = self._slow(payload, broken)
            quotes = -1  # counted by _slow
        if (quotes >= 0 and duplicate_keys.may_repeat(payload, quotes)
                and duplicate_keys.flat_repeats(payload) is not False):
            self._repeated_records(payload, broken)
        if b'_"' in payload:
            self._must_understand(self.parse_json(payload, repeats=False))
        self.resolve(batch, i, records, now_us, rows, rejections, broken)

    @staticmethod
    def _repeated_records(payload: bytes, broken: dict[int, Broken]) -> None:
        """Each record of the pack that sends a key twice goes to ``broken`` as ``duplicate_key`` (it is
        rejected alone, and a later record resolving against a base field it sent twice with it); a pack
        whose records cannot be told apart is refused whole."""
        text = payload.decode("utf-8", "surrogatepass")
        spans = array_item_spans(text)
        if spans is None:
            key = duplicate_keys.repeated_key(text)
            if key is not None:
                raise DecodeFailure(duplicate_keys.REASON, duplicate_keys.detail(key))
            return
        for j, (a, b) in enumerate(spans):
            key = duplicate_keys.repeated_key(text[a:b])
            if key is not None:
                broken[j] = Broken(duplicate_keys.REASON, duplicate_keys.detail(key, f"record {j}: "),
                                   text[a:b].encode("utf-8", "surrogatepass"), frozenset({key}) & _BASE)

    def _slow(self, payload: bytes, broken: dict[int, Broken]) -> list[Record]:
        """The pack through Python's JSON parser, when the typed decode refused it (a wrong type,
        a lone surrogate ``\\ud800``, which msgspec refuses and Python accepts); records with a
        field of the wrong type go to ``broken``."""
        obj = self.parse_json(payload, repeats=False)
        if not isinstance(obj, list):
            raise DecodeFailure(Reason.NOT_AN_OBJECT, f"a SenML pack is a JSON array, got {type(obj).__name__}")
        records = [self._record(r, j, broken) for j, r in enumerate(obj)]
        if duplicate_keys.may_repeat(payload, duplicate_keys.quotes_of(obj)):
            self._repeated_records(payload, broken)
        return records

    @staticmethod
    def _record(raw: object, j: int, broken: dict[int, Broken]) -> Record:
        """Record ``j`` of a pack; one with fields of the wrong type is the record of its usable
        fields, and goes to ``broken`` (it is rejected alone; see :class:`Broken`)."""
        if not isinstance(raw, dict):  # it sets no base field: the records after it are unaffected
            broken[j] = Broken(Reason.NOT_AN_OBJECT, f"record {j} is {type(raw).__name__}, not an object",
                               json_bytes(raw), frozenset())
            return Record()
        known = {k: v for k, v in raw.items() if k in _LABELS}  # unknown labels are ignored (§4.4)
        try:
            return msgspec.convert(known, Record)
        except (msgspec.ValidationError, UnicodeEncodeError):
            # UnicodeEncodeError: msgspec cannot word the error about a string holding a lone surrogate
            pass
        bad = sorted(k for k, v in known.items() if not _converts(k, v))
        good = {k: v for k, v in known.items() if k not in bad}
        reason = Reason.BAD_TIMESTAMP if "t" in bad or "bt" in bad else Reason.BAD_TYPE
        kinds = ", ".join(f"{k} is {type(known[k]).__name__}" for k in bad)
        broken[j] = Broken(reason, f"record {j}: wrong type ({kinds}); n, u, vs, vd, bn, bu are text, vb true or "
                                   f"false, the others numbers (RFC 8428 §4)", json_bytes(raw), frozenset(bad) & _BASE)
        return msgspec.convert(good, Record)

    @staticmethod
    def _must_understand(obj: object) -> None:
        if isinstance(obj, list):
            for j, r in enumerate(obj):
                if isinstance(r, dict):
                    for key in r:
                        if isinstance(key, str) and key.endswith("_"):
                            raise DecodeFailure(Reason.BAD_TYPE,
                                                f"record {j} has must-understand field {key!r} (RFC 8428 §4.4)")

    # -- resolution (shared with CBOR) ------------------------------------------------------

    def resolve(self, batch: MessageBatch, i: int, records: list[Record], now_us: float, rows: Rows,
                rejections: list[Rejection], broken: dict[int, Broken] | None = None) -> None:
        """Resolve base fields and relative times (RFC 8428 §4.6) and add the readings; a
        ``broken`` record is rejected alone, and so is a later one needing a base field it broke."""
        if not records:
            raise DecodeFailure(Reason.EMPTY_PAYLOAD, "the pack holds no records")
        opts = self.options
        fixed_sensor = opts.sensor_id
        by_unit = opts.metric_by_unit
        seps = opts.separators
        now_s = now_us / 1e6
        payload = batch.payloads[i]
        sent = RecordsAsSent(payload if self.records_as_sent and type(payload) is bytes else None, cbor=self.cbor)
        bn = ""
        bt = 0.0
        bu: str | None = None
        bv = 0.0
        bs = 0.0
        names: dict[tuple[str, str | None], tuple[str, str | None]] = {}
        positions: dict[tuple[str, float], list[float]] | None = None
        #: base field -> the broken record that could not set it (see Broken)
        unset: dict[str, int] = {}
        start = len(rows)
        add = rows.add
        for j, r in enumerate(records):
            if r.bver is not None and r.bver > 10:
                raise DecodeFailure(Reason.BAD_TYPE, f"record {j}: SenML version {r.bver} is newer than 10")
            if r.bn is not None:
                bn = r.bn
            if r.bt is not None:
                bt = r.bt
            if r.bu is not None:
                bu = r.bu
            if r.bv is not None:
                bv = r.bv
            if r.bs is not None:
                bs = r.bs
            if broken or unset:
                if self._rejected_alone(batch, i, j, r, broken, unset, rejections, sent):
                    continue
            n = r.n
            key = (bn, n)
            split = names.get(key)
            if split is None:
                split = names[key] = self._split(bn, n, seps)
            sensor, metric = split
            if fixed_sensor is not None:
                sensor = fixed_sensor
            t = bt + (r.t or 0.0)
            if not math.isfinite(t):
                rejections.append(self.reject(batch, i, Reason.BAD_TIMESTAMP, f"record {j}: time {t!r} is not finite",
                                              sent.of(j) or json_bytes(r), j))
                continue
            if t < RELATIVE_LIMIT:
                t += now_s
            unit = r.u if r.u is not None else bu
            if r.v is not None:
                value: float | None = bv + r.v
            elif r.s is not None:
                value = bs + r.s
            elif r.vs is not None or r.vb is not None or r.vd is not None:
                self.non_numeric(batch, i, j, n or bn, r.vs if r.vs is not None else r.vb if r.vb is not None else r.vd,
                                 rejections)
                continue
            elif r.bv is not None:
                value = bv
            else:
                rejections.append(self.reject(batch, i, Reason.MISSING_VALUE,
                                              f"record {j} has no value (v, vs, vb, vd or s)",
                                              sent.of(j) or json_bytes(r), j))
                continue
            if unit == "lat" or unit == "lon":
                if positions is None:
                    positions = {}
                positions.setdefault((sensor, t), [math.nan, math.nan])[0 if unit == "lat" else 1] = value
                continue
            if metric is None:
                metric = by_unit.get(unit) if unit is not None else None
                if metric is None:
                    rejections.append(self.reject(
                        batch, i, Reason.MISSING_FIELD,
                        f"record {j}: no name part and unit {unit!r} has no metric (senml.metric_by_unit)",
                        sent.of(j) or json_bytes(r), j))
                    continue
            if not sensor:
                rejections.append(self.reject(batch, i, Reason.BAD_SENSOR_ID, f"record {j}: empty name",
                                              sent.of(j) or json_bytes(r), j))
                continue
            add(i, j, sensor, metric, t * 1e6, value, unit, None, None, r)
        if positions:
            self._place(rows, start, positions)

    def _rejected_alone(self, batch: MessageBatch, i: int, j: int, r: Record, broken: dict[int, Broken] | None,
                        unset: dict[str, int], rejections: list[Rejection], sent: RecordsAsSent) -> bool:
        """Whether record ``j`` is rejected on its own: it is broken, or it resolves against a base
        field an earlier broken record could not set (``unset``, kept up to date here)."""
        for f in [f for f in unset if getattr(r, f) is not None]:
            del unset[f]  # set again by this record
        b = broken.get(j) if broken else None
        if b is not None:
            unset.update(dict.fromkeys(b.bad_base, j))
            rejections.append(self.reject(batch, i, b.reason, b.detail, sent.of(j) or b.raw, j))
            return True
        if not unset:
            return False
        f, k = next(iter(unset.items()))
        reason = Reason.BAD_TIMESTAMP if f == "bt" else Reason.BAD_SENSOR_ID if f == "bn" else Reason.BAD_TYPE
        rejections.append(self.reject(batch, i, reason, f"record {j}: resolves against base field {f}, which record "
                                                        f"{k} gave with the wrong type",
                                      sent.of(j) or json_bytes(r), j))
        return True

    @staticmethod
    def _split(bn: str, n: str | None, seps: str) -> tuple[str, str | None]:
        """(sensor id, metric or None) from base name and name."""
        if bn:
            sensor = bn.rstrip(seps) or bn
            return sensor, (n or None)
        if not n:
            return "", None
        cut = max(n.rfind(c) for c in ":/") if any(c in n for c in ":/") else -1
        if cut <= 0:
            return n, None
        # "urn:dev:ow:10e2073a01080063" alone is a sensor (its metric comes from the unit);
        # "urn:dev:ow:10e2073a01080063:temp" is sensor + metric
        head, tail = n[:cut], n[cut + 1:]
        if n.startswith("urn:dev:") and head.count(":") < 3:
            return n, None
        return head, (tail or None)

    @staticmethod
    def _place(rows: Rows, start: int, positions: dict[tuple[str, float], list[float]]) -> None:
        """Give readings the position reported for their sensor at their time (§5.1.3)."""
        for k in range(start, len(rows)):
            pos = positions.get((rows.sensor[k], rows.ts_us[k] / 1e6))
            if pos is not None:
                rows.lat[k], rows.lon[k] = pos


def _converts(label: str, value: object) -> bool:
    """Whether ``value`` has the type record field ``label`` takes."""
    try:
        msgspec.convert({label: value}, Record)
    except (msgspec.ValidationError, UnicodeEncodeError):
        return False
    return True


class SenmlCborFormat(SenmlJsonFormat):
    """SenML CBOR packs (``application/senml+cbor``, RFC 8428 §6): integer labels, same model."""

    name = "senml_cbor"
    cbor = True  # a rejected record is quarantined as its CBOR bytes as sent (it was re-encoded JSON: newcomer46)

    def decode_message(self, batch: MessageBatch, i: int, payload: bytes, now_us: float, rows: Rows,
                       rejections: list[Rejection]) -> None:
        try:
            obj = cbor2.loads(payload)
        except RecursionError:
            raise DecodeFailure(Reason.TOO_DEEP, "CBOR nesting exceeds the parser's limit") from None
        except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, MemoryError, EOFError) as exc:
            raise DecodeFailure(Reason.MALFORMED, f"not valid CBOR: {exc}") from None
        if not isinstance(obj, list):
            raise DecodeFailure(Reason.NOT_AN_OBJECT, f"a SenML pack is a CBOR array, got {type(obj).__name__}")
        records = []
        broken: dict[int, Broken] = {}
        for j, raw in enumerate(obj):
            if not isinstance(raw, dict):
                records.append(self._record(raw, j, broken))
                continue
            named: dict[str, Any] = {}
            for k, v in raw.items():
                label = CBOR_LABELS.get(k) if isinstance(k, int) else k if isinstance(k, str) else None
                if label is None:
                    continue  # unknown labels are ignored unless must-understand (strings ending in "_")
                if isinstance(label, str) and label.endswith("_"):
                    raise DecodeFailure(Reason.BAD_TYPE, f"record {j} has must-understand field {label!r} (RFC 8428 §4.4)")
                if label == "vd" and isinstance(v, (bytes, bytearray)):
                    v = v.hex()
                elif hasattr(v, "__float__") and not isinstance(v, (bool, int, float)):
                    v = float(v)  # decimal fractions (tag 4) -> Decimal
                named[label] = v
            records.append(self._record(named, j, broken))
        self.resolve(batch, i, records, now_us, rows, rejections, broken)
