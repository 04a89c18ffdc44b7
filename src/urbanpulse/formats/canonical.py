"""The canonical JSON format: one reading object, or an array of them, per message.

``{"sensor_id", "metric", "ts" (RFC 3339 with offset, or epoch ms), "value", "lat"?, "lon"?, "unit"?}``

The fast path decodes a whole message with one typed msgspec call in C. Only a message that
fails it takes the slow path, which parses leniently (so NaN, Infinity and huge numbers get
their own reason instead of "invalid JSON") and checks each array item on its own, so one bad
reading rejects that reading and not its neighbours.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Literal

import msgspec
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from urbanpulse.formats import canonical_compiled, canonical_repeats, duplicate_keys
from urbanpulse.formats.base import Decoded, DecodeLimits, MessageBatch, depth_and_quotes, describe_exception
from urbanpulse.formats.base import array_item_spans as _array_item_spans
from urbanpulse.model import EventTime, Name, Reading, ReadingColumns, Reason, Rejection

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)


class TopicReading(msgspec.Struct):
    """A reading whose sensor id and/or metric may come from the MQTT topic instead."""

    ts: EventTime
    value: float | None
    sensor_id: Name | None = None
    metric: Name | None = None
    lat: float | None = None
    lon: float | None = None
    unit: str | None = None


def _reason_for(err: msgspec.ValidationError) -> Reason:
    """Map a msgspec validation message to a stable reason code."""
    text = str(err)
    if "missing required field" in text:
        return Reason.MISSING_FIELD
    path = text.rsplit(" - at ", 1)[-1].strip("`") if " - at " in text else ""
    if path.endswith(".ts"):
        return Reason.BAD_TIMESTAMP
    if path.endswith(".sensor_id"):
        return Reason.BAD_SENSOR_ID
    if path.endswith(".lat") or path.endswith(".lon"):
        return Reason.BAD_LOCATION
    if text.startswith("Expected `object`"):
        return Reason.NOT_AN_OBJECT
    return Reason.BAD_TYPE


def _valid_utf8(data: bytes) -> bool:
    """Whether ``data`` is UTF-8 throughout. msgspec does not check the parts of a message it
    skips (an unknown key, say), so without this a message with invalid UTF-8 there would be
    accepted when its readings are valid and rejected whole when a neighbour is not (found by
    fuzzing). ASCII, the usual case, is one C-speed pass; a batch's messages are checked joined:
    each one msgspec accepts starts and ends in ASCII, so no sequence can span two."""
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _all_valid_utf8(payloads: list[bytes]) -> bool:
    """Whether every payload is UTF-8 throughout: all ASCII (one C call per message, no copy of
    the batch), else :func:`_valid_utf8` over them joined."""
    try:
        if all(map(bytes.isascii, payloads)):
            return True
    except TypeError:  # not all bytes (a bytearray, say): the joined check takes any buffer
        pass
    return _valid_utf8(b"".join(payloads))


def _remember_whole(seen: dict[bytes, tuple[Reason, str]], payload: bytes, objs: list, n_objs: int,
                    rejections: list[Rejection], n_rej: int) -> None:
    """Remember ``payload``'s outcome in ``seen`` where the slow path rejected it whole: one
    rejection of the message itself (item -1), no reading. Then an identical message later in the
    batch has the same reason and detail (the slow path reads nothing but the bytes), and is
    rejected without parsing it three times and raising twice again (a hostile body of 1 M ``{}``
    lines, benchmarks/README.md ``reject39``). ``decode_error`` is not remembered: its detail is
    an exception's text, which nothing promises is a function of the bytes alone."""
    if len(objs) != n_objs or len(rejections) != n_rej + 1:
        return
    r = rejections[-1]
    if r.item == -1 and r.payload is payload and r.reason is not Reason.DECODE_ERROR:
        seen[payload] = (r.reason, r.detail)


def _item_bytes(text: str, spans: list[tuple[int, int]] | None, j: int, item: object) -> bytes:
    """Array item ``j`` as received (``text`` came from valid UTF-8, so any slice encodes);
    without its span, the item as ASCII-escaped JSON, which any item can be turned into."""
    if spans is not None and j < len(spans):
        a, b = spans[j]
        return text[a:b].encode("utf-8")
    return json.dumps(item).encode("ascii")


def _repeats(payload: bytes, decoded: object) -> bool:
    """Whether message ``payload`` (decoded by msgspec as ``decoded``) sends one of the reading's fields twice
    (formats/canonical_repeats.py): counted in C, parsed again only where the counts say it may."""
    objs = decoded if type(decoded) is list else [decoded]
    if not canonical_repeats.may_send_twice([payload], objs):
        return False
    return canonical_repeats.sends_a_field_twice(bytes(payload).decode("utf-8", "surrogatepass")) is not None


def _batch_repeats(payloads: list[bytes], decoded: list, objs: list, columns: ReadingColumns) -> bool:
    """Whether a message of a batch decoded in one go sends a field twice: its messages counted at once (the usual
    batch ends there), else each message (:func:`_repeats`). Every reading here has its sensor id and metric."""
    n = len(objs)
    present = (n, n, n - int(np.count_nonzero(np.isnan(columns.lat))), n - int(np.count_nonzero(np.isnan(columns.lon))),
               n - columns.unit.count(None))
    if not canonical_repeats.may_send_twice(payloads, objs, present):
        return False
    return any(map(_repeats, payloads, decoded))


class CanonicalOptions(BaseModel):
    """Options of the canonical format (``formats.options.json``)."""

    model_config = ConfigDict(extra="forbid")

    ts_unit: Literal["ms", "s", "auto"] = Field(
        "ms", description="unit of numeric `ts`: ms (default), s, or auto (below 1e11 is seconds, else ms)")


class CanonicalJsonFormat:
    """Decoder for urbanpulse's canonical JSON readings (format name ``json``)."""

    name = "json"
    Options = CanonicalOptions
    time_unit = "ms (RFC 3339 text too)"
    #: whether batches go through the compiled decoder once it is loaded (False: msgspec alone,
    #: the tests' oracle)
    compiled = True

    def __init__(self, limits: DecodeLimits | None = None, options: CanonicalOptions | None = None) -> None:
        self.limits = limits or DecodeLimits()
        self.ts_unit = (options or CanonicalOptions()).ts_unit
        self._full = msgspec.json.Decoder(Reading | list[Reading])
        self._partial = msgspec.json.Decoder(TopicReading | list[TopicReading])
        canonical_compiled.start_loading()  # the compiled decoder, on a thread: msgspec until it is loaded

    def decode(self, batch: MessageBatch) -> Decoded:
        """Decode all messages of ``batch``; bad input becomes rejections, never exceptions.

        The messages the compiled decoder takes (formats/canonical_compiled.py) come out as
        msgspec's path would make them; the others take that path."""
        kernel = canonical_compiled.kernel() if self.compiled else None
        decoded = canonical_compiled.decode(self, batch, kernel) if kernel is not None else None
        if decoded is None:
            clean = self._decode_clean(batch)
            decoded = clean if clean is not None else self._decode_each(batch)
        if self.ts_unit != "ms" and len(decoded.columns):
            self._epoch_seconds(decoded)
        return decoded

    def _epoch_seconds(self, decoded: Decoded) -> None:
        """Numeric timestamps in seconds (``ts_unit: s``), or where they can only be seconds
        (``auto``: below 1e11, which as ms is before 1973-03-04 and as s is before year 5138)."""
        objs = decoded.raw_items[0]  # type: ignore[index]
        ts = decoded.columns.ts_us
        # None: a reading of the compiled decoder, whose ts is always a number
        numeric = np.ones(len(ts), bool) if objs is None else np.fromiter(
            (o is None or type(o.ts) is not datetime for o in objs), dtype=bool, count=len(objs))
        if self.ts_unit == "auto":
            with np.errstate(invalid="ignore"):
                numeric &= np.abs(ts) < 1e11 * 1000.0
        ts[numeric] *= 1000.0

    def _decode_clean(self, batch: MessageBatch) -> Decoded | None:
        """The common case in one comprehension: every message a valid object or array.

        Returns None as soon as anything is unusual; the per-message path then sorts it out.
        """
        payloads = batch.payloads
        if batch.topic_fields is not None or not payloads:
            return None
        sizes = list(map(len, payloads))
        if min(sizes) == 0 or max(sizes) > self.limits.max_payload_bytes or not _all_valid_utf8(payloads):
            return None
        try:
            decoded = list(map(self._full.decode, payloads))
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return None
        if list not in set(map(type, decoded)):  # one C pass: no message is an array
            n = len(decoded)
            columns = self._columns_arrays(decoded, np.arange(n, dtype=np.int32), np.full(n, -1, np.int32), [])
            if _batch_repeats(payloads, decoded, decoded, columns):
                return None
            return Decoded(columns=columns, rejections=[], raw_items=[decoded, {}])
        objs: list[Reading] = []
        msg_idx: list[int] = []
        item_idx: list[int] = []
        for i, d in enumerate(decoded):
            if type(d) is list:
                if not d:
                    return None
                objs.extend(d)
                msg_idx.extend([i] * len(d))
                item_idx.extend(range(len(d)))
            else:
                objs.append(d)
                msg_idx.append(i)
                item_idx.append(-1)
        columns = self._columns(objs, msg_idx, item_idx, [])
        if _batch_repeats(payloads, decoded, objs, columns):
            return None
        return Decoded(columns=columns, rejections=[], raw_items=[objs, {}])

    def _decode_each(self, batch: MessageBatch) -> Decoded:
        """Message by message, so each bad one is rejected with its own reason."""
        objs: list[Reading | TopicReading] = []
        msg_idx: list[int] = []
        item_idx: list[int] = []
        rejections: list[Rejection] = []
        slow_raw: dict[int, object] = {}
        nan_not_null: list[int] = []
        max_bytes = self.limits.max_payload_bytes
        fields = batch.topic_fields
        full = self._full.decode
        # payload -> (reason, detail) of a message the slow path rejected whole (:func:`_remember_whole`)
        seen: dict[bytes, tuple[Reason, str]] = {}
        for i, payload in enumerate(batch.payloads):
            if fields is None and type(payload) is bytes:
                known = seen.get(payload)
                if known is not None:
                    rejections.append(self._reject(batch, i, known[0], known[1], payload))
                    continue
            size = len(payload)
            if size == 0 or size > max_bytes:
                if size == 0:
                    rejections.append(self._reject(batch, i, Reason.EMPTY_PAYLOAD, "message is empty", payload))
                else:
                    rejections.append(self._reject(
                        batch, i, Reason.PAYLOAD_TOO_LARGE,
                        f"{size} bytes exceeds the {max_bytes}-byte limit (validation.max_payload_bytes); not parsed",
                        payload))
                continue
            topic_fields = fields[i] if fields is not None else None
            try:
                if not _valid_utf8(payload):
                    raise UnicodeDecodeError("utf-8", payload, 0, 1, "found before msgspec")
                decoded = full(payload) if topic_fields is None else self._partial.decode(payload)
                if _repeats(payload, decoded):
                    raise msgspec.DecodeError("a key is sent twice: the slow path rejects its object")
            except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                # RecursionError: msgspec skipping a deeply nested unknown field (found by fuzzing)
                n_objs, n_rej = len(objs), len(rejections)
                self._decode_slow(batch, i, payload, topic_fields, objs, msg_idx, item_idx,
                                  rejections, slow_raw, nan_not_null)
                if topic_fields is None and type(payload) is bytes:
                    _remember_whole(seen, payload, objs, n_objs, rejections, n_rej)
                continue
            if type(decoded) is list:
                if not decoded:
                    rejections.append(self._reject(batch, i, Reason.EMPTY_PAYLOAD, "array holds no readings", payload))
                    continue
                positions: range | list[int] = range(len(decoded))
                if topic_fields is not None:
                    positions = self._apply_topic(batch, i, decoded, topic_fields, rejections, payload, True)
                    decoded = [decoded[j] for j in positions]
                objs.extend(decoded)
                msg_idx.extend([i] * len(decoded))
                item_idx.extend(positions)
            else:
                if topic_fields is not None:
                    one = self._apply_topic(batch, i, [decoded], topic_fields, rejections, payload, False)
                    if not one:
                        continue
                objs.append(decoded)
                msg_idx.append(i)
                item_idx.append(-1)
        columns = self._columns(objs, msg_idx, item_idx, nan_not_null)
        return Decoded(columns=columns, rejections=rejections, raw_items=[objs, slow_raw])

    # -- topic templates -------------------------------------------------------------------

    def _apply_topic(self, batch: MessageBatch, i: int, readings: list, topic_fields: dict[str, str],
                     rejections: list[Rejection], payload: bytes, in_array: bool) -> list[int]:
        """Fill sensor id / metric from the topic; returns the positions of the readings kept.

        A reading that contradicts the topic, or lacks a field neither provides, is rejected.
        """
        kept = []
        spans: list[tuple[int, int]] | None = None
        text = ""
        for j, r in enumerate(readings):
            item = j if in_array else -1
            bad = None
            for key in ("sensor_id", "metric"):
                from_topic = topic_fields.get(key)
                current = getattr(r, key)
                if current is None:
                    if from_topic is None:
                        bad = (Reason.MISSING_FIELD, f"`{key}` is neither in the payload nor in the topic template")
                        break
                    setattr(r, key, from_topic)
                elif from_topic is not None and current != from_topic:
                    bad = (Reason.TOPIC_MISMATCH, f"payload {key}={current!r} but topic says {from_topic!r}")
                    break
            if bad is None:
                kept.append(j)
            else:
                raw = payload
                if in_array:  # the item as received (the payload decoded, so it is valid UTF-8)
                    if spans is None:
                        text = payload.decode("utf-8")
                        spans = _array_item_spans(text) or []
                    raw = _item_bytes(text, spans, j, msgspec.to_builtins(r))
                rejections.append(self._reject(batch, i, bad[0], bad[1], raw, item))
        return kept

    # -- slow path -------------------------------------------------------------------------

    def _decode_slow(self, batch: MessageBatch, i: int, payload: bytes, topic_fields: dict[str, str] | None,
                     objs: list, msg_idx: list[int], item_idx: list[int], rejections: list[Rejection],
                     slow_raw: dict[int, object], nan_not_null: list[int]) -> None:
        """Find out exactly what is wrong with a message, keeping every good item in it."""
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            rejections.append(self._reject(batch, i, Reason.INVALID_UTF8, str(exc)[:200], payload))
            return
        try:
            parsed = json.loads(text)
        except RecursionError:
            rejections.append(self._reject(batch, i, Reason.TOO_DEEP, "JSON nesting exceeds the parser's limit", payload))
            return
        except ValueError as exc:
            rejections.append(self._reject(batch, i, Reason.INVALID_JSON, str(exc)[:200], payload))
            return
        quotes = depth_and_quotes(parsed, self.limits.max_json_depth)
        if quotes < 0:
            rejections.append(self._reject(
                batch, i, Reason.TOO_DEEP,
                f"JSON nests deeper than {self.limits.max_json_depth} levels (validation.max_json_depth)", payload))
            return
        repeats = duplicate_keys.may_repeat(text, quotes)
        if repeats and not isinstance(parsed, list):
            key = canonical_repeats.sends_a_field_twice(text)
            if key is not None:
                rejections.append(self._reject(batch, i, duplicate_keys.REASON, duplicate_keys.detail(key), payload))
                return
        if isinstance(parsed, dict):
            items, in_array = [parsed], False
        elif isinstance(parsed, list):
            items, in_array = parsed, True
            if not items:
                rejections.append(self._reject(batch, i, Reason.EMPTY_PAYLOAD, "array holds no readings", payload))
                return
        else:
            rejections.append(self._reject(batch, i, Reason.NOT_AN_OBJECT,
                                           f"expected a JSON object or array, got {type(parsed).__name__}", payload))
            return
        spans = _array_item_spans(text) if in_array else None
        if repeats and in_array and spans is None:  # items that cannot be told apart: the message
            key = canonical_repeats.sends_a_field_twice(text)
            if key is not None:
                rejections.append(self._reject(batch, i, duplicate_keys.REASON, duplicate_keys.detail(key), payload))
                return
        for j, item in enumerate(items):
            where = j if in_array else -1
            raw = payload
            try:
                if in_array:
                    raw = _item_bytes(text, spans, j, item)
                    if repeats and spans is not None and j < len(spans):
                        key = canonical_repeats.sends_a_field_twice(text[spans[j][0]:spans[j][1]])
                        if key is not None:
                            rejections.append(self._reject(batch, i, duplicate_keys.REASON,
                                                           duplicate_keys.detail(key), raw, where))
                            continue
                self._slow_item(batch, i, item, where, raw, topic_fields, objs, msg_idx, item_idx, rejections,
                                slow_raw, nan_not_null)
            except Exception as exc:  # noqa: BLE001 - one item nobody anticipated costs that item only
                rejections.append(self._reject(batch, i, Reason.DECODE_ERROR, describe_exception(exc), raw, where))

    def _slow_item(self, batch: MessageBatch, i: int, item: object, where: int, raw: bytes,
                   topic_fields: dict[str, str] | None, objs: list, msg_idx: list[int], item_idx: list[int],
                   rejections: list[Rejection], slow_raw: dict[int, object], nan_not_null: list[int]) -> None:
        """One parsed object of a message (``where``: its array index, -1 for the whole message).

        Appends to the output lists only once nothing can raise any more, so an exception leaves
        them consistent and the caller can quarantine the item alone."""
        if not isinstance(item, dict):
            rejections.append(self._reject(batch, i, Reason.NOT_AN_OBJECT,
                                           f"array item is {type(item).__name__}, not an object", raw, where))
            return
        target: type = Reading if topic_fields is None else TopicReading
        try:
            reading = msgspec.convert(item, target)
        except msgspec.ValidationError as exc:
            rejections.append(self._reject(batch, i, _reason_for(exc), str(exc)[:200], raw, where))
            return
        except UnicodeEncodeError as exc:  # msgspec meets a key or text it cannot encode (found by fuzzing)
            rejections.append(self._reject(
                batch, i, Reason.INVALID_JSON,
                f"a \\u escape encodes a lone surrogate ({exc.object[exc.start:exc.end]!r}), which is not a Unicode "
                "character (RFC 8259 section 8.2)", raw, where))
            return
        if topic_fields is not None:
            filled = self._apply_topic(batch, i, [reading], topic_fields, rejections, raw, False)
            if not filled:
                if where != -1:  # fix the item index the helper could not know
                    rejections[-1].item = where
                return
        value = item.get("value")
        if isinstance(value, float) and value != value:
            nan_not_null.append(len(objs))
        slow_raw[len(objs)] = raw
        objs.append(reading)
        msg_idx.append(i)
        item_idx.append(where)

    # -- columns ---------------------------------------------------------------------------

    @classmethod
    def _columns(cls, objs: list, msg_idx: list[int], item_idx: list[int], nan_not_null: list[int]) -> ReadingColumns:
        """Turn decoded structs into numpy columns (one pass per field, in C where possible)."""
        return cls._columns_arrays(objs, np.array(msg_idx, dtype=np.int32), np.array(item_idx, dtype=np.int32),
                                   nan_not_null)

    @staticmethod
    def _optional_floats(items: list[float | None]) -> np.ndarray:
        """A float column where None is NaN. Most messages carry no location, and numpy turns a
        None into NaN about five times slower than it converts a float, so a column holding
        only None is made whole."""
        n = len(items)
        if items.count(None) == n:
            return np.full(n, np.nan)
        return np.array(items, dtype=np.float64)

    @classmethod
    def _columns_arrays(cls, objs: list, msg_idx: np.ndarray, item_idx: np.ndarray,
                        nan_not_null: list[int]) -> ReadingColumns:
        stamps = [o.ts for o in objs]
        try:
            with np.errstate(over="ignore"):  # an absurd epoch overflows to inf: bad_timestamp later
                ts_us = np.array(stamps, dtype=np.float64) * 1000.0
        except TypeError:  # some RFC 3339 strings among them
            ts_us = np.array(
                [(t - _EPOCH) // _ONE_US if type(t) is datetime else t * 1000.0 for t in stamps],
                dtype=np.float64,
            )
        value = np.array([o.value for o in objs], dtype=np.float64)
        null = np.isnan(value)
        if nan_not_null:
            null[nan_not_null] = False
        return ReadingColumns(
            sensor_id=[o.sensor_id for o in objs],
            metric=[o.metric for o in objs],
            ts_us=ts_us,
            value=value,
            lat=cls._optional_floats([o.lat for o in objs]),
            lon=cls._optional_floats([o.lon for o in objs]),
            unit=[o.unit for o in objs],
            msg=msg_idx,
            item=item_idx,
            has_null_value=null,
        )

    @staticmethod
    def _reject(batch: MessageBatch, i: int, reason: Reason, detail: str, payload: bytes, item: int = -1) -> Rejection:
        topic, partition, offset = batch.provenance(i)
        return Rejection(reason=reason, detail=detail, payload=payload, source=batch.source,
                         topic=topic, partition=partition, offset=offset, item=item)

    def raw_of(self, batch: MessageBatch, decoded: Decoded, k: int) -> bytes:
        """The raw bytes to quarantine for reading ``k`` of ``decoded``: the message as received,
        or for an array item the item's exact bytes within it."""
        objs, slow_raw = decoded.raw_items[0], decoded.raw_items[1]
        raw = slow_raw.get(k)  # type: ignore[union-attr]
        if raw is not None:
            return raw  # type: ignore[return-value]
        m, j = decoded.columns.msg.item(k), decoded.columns.item.item(k)
        payload = batch.payloads[m]
        if j == -1:
            return payload
        try:
            text = payload.decode("utf-8")
            spans = _array_item_spans(text)
            if spans is not None and j < len(spans):
                a, b = spans[j]
                return text[a:b].encode("utf-8")
        except Exception:  # noqa: BLE001 - fall back to the item as decoded
            pass
        return msgspec.json.encode(objs[k])  # type: ignore[index]
