"""Decode and validate one message batch, so that nothing a message contains costs more than
that message.

The fast path is the format's batch decode as is. Only if it raises is the batch decoded again
one message at a time, and a message that raises on its own is quarantined as ``decode_error``
with the exception's type and text and its bytes as received: a hostile or merely unforeseen
payload never stops its source or loses its neighbours. With a privacy stage, personal ids are
replaced right after decoding, before anything (validation, the log) sees them.
"""

from __future__ import annotations

import logging

from urbanpulse.formats.base import Format, MessageBatch, describe_exception
from urbanpulse.model import ReadingColumns, Reason, Rejection
from urbanpulse.pipeline.throttled_log import ThrottledLog
from urbanpulse.privacy.stage import PrivacyStage
from urbanpulse.quality.validate import ReadingValidator, Validated

log = logging.getLogger(__name__)


class DecodeStage:
    """Format decode + privacy + validation of a batch, isolated per message on failure."""

    def __init__(self, fmt: Format, validator: ReadingValidator, privacy: PrivacyStage | None) -> None:
        self.fmt = fmt
        self.validator = validator
        self.privacy = privacy
        self._raw_of = getattr(fmt, "raw_of", None)
        self._failures = ThrottledLog(
            log, "format %r raised on a batch from %s; decoded it message by message, quarantining only the "
                 "message that raises (reason decode_error)")

    def decode(self, batch: MessageBatch) -> Validated:
        """Readings and rejections of ``batch``; whatever the format or validation raises costs
        only the message raising it (see the module doc). Never raises."""
        try:
            return self._decode_validate(batch)
        except Exception as exc:  # noqa: BLE001 - input nobody anticipated must not stop a source
            privacy = self.privacy
            logged: BaseException = exc
            if privacy is not None and privacy.withholds(batch):  # its text may quote a personal id
                logged = _Withheld(f"{type(exc).__name__} (text withheld: personal data)")
            self._failures.failed(logged, getattr(self.fmt, "name", type(self.fmt).__name__), batch.source)
            if len(batch.payloads) == 1:
                validated = Validated(ReadingColumns.empty(), [_decode_error(batch, 0, exc)])
            else:
                validated = self._decode_one_by_one(batch)
            if privacy is not None:
                privacy.scrub(batch.source, validated.rejections)
            return validated

    def _decode_validate(self, batch: MessageBatch) -> Validated:
        decoded = self.fmt.decode(batch)
        raw_of = self._raw_of
        raw = (lambda k: raw_of(batch, decoded, k)) if raw_of else (lambda k: b"")
        privacy = self.privacy
        scope = privacy.scope(batch, decoded.columns) if privacy is not None else None
        if scope is not None:  # right after decode: nothing below sees a raw personal id
            privacy.apply(batch, decoded, scope)
            raw = privacy.raw_of(scope, decoded.columns, raw)
            validated = self.validator.validate(batch, decoded, raw, privacy.withholds_reading(scope, decoded.columns),
                                                bad_location=scope.bad_location, bad_sensor_id=scope.bad_sensor_id,
                                                units_as_sent=scope.units_as_sent)
        else:
            validated = self.validator.validate(batch, decoded, raw)
        if scope is not None:
            validated.readings = privacy.drop_metrics(scope, validated.readings)
            privacy.scrub(batch.source, validated.rejections, scope)
        for r in validated.rejections:  # cheap unless a rejection could not be stored as it is
            if type(r.payload) is not bytes or type(r.detail) is not str or not r.detail.isascii() \
                    or type(r.reason) is not Reason:
                _make_storable(r, batch)
        return validated

    def _decode_one_by_one(self, batch: MessageBatch) -> Validated:
        """The slow path after a batch decode raised (see :meth:`decode`)."""
        parts: list[ReadingColumns] = []
        rejections: list[Rejection] = []
        for i in range(len(batch.payloads)):
            try:
                one = self._decode_validate(_one_message(batch, i))
            except Exception as exc:  # noqa: BLE001 - see decode
                rejections.append(_decode_error(batch, i, exc))
                continue
            if len(one.readings):
                one.readings.msg[:] = i
                parts.append(one.readings)
            rejections.extend(one.rejections)
        readings = ReadingColumns.concat(parts) if parts else ReadingColumns.empty()
        return Validated(readings, rejections)


class _Withheld(Exception):
    """Stands in for an exception whose text may quote personal data, in the log."""


def _one_message(batch: MessageBatch, i: int) -> MessageBatch:
    """Message ``i`` of ``batch`` as a batch of its own, with its provenance."""
    def pick(values: list | None) -> list | None:  # noqa: ANN401
        return values[i:i + 1] if values is not None else None

    return MessageBatch(source=batch.source, payloads=batch.payloads[i:i + 1], topics=pick(batch.topics),
                        partitions=pick(batch.partitions), offsets=pick(batch.offsets),
                        topic_fields=pick(batch.topic_fields), received_ns=batch.received_ns,
                        lanes=batch.lanes[i:i + 1] if batch.lanes is not None else None)


def _decode_error(batch: MessageBatch, i: int, exc: BaseException) -> Rejection:
    """Message ``i`` quarantined whole, as received, because decoding or validating it raised."""
    topic, partition, offset = batch.provenance(i)
    return Rejection(reason=Reason.DECODE_ERROR, detail=describe_exception(exc), payload=_as_bytes(batch.payloads[i]),
                     source=batch.source, topic=topic, partition=partition, offset=offset)


def _as_bytes(payload: object) -> bytes:
    if type(payload) is bytes:
        return payload  # type: ignore[return-value]
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    return str(payload).encode("utf-8", "backslashreplace")


def _make_storable(r: Rejection, batch: MessageBatch) -> None:
    """Repair what a format handed back that PostgreSQL could not store (text that is not valid
    UTF-8, a payload that is not bytes, a reason that is not a :class:`Reason`), so one odd
    rejection never makes its whole batch unwritable."""
    r.detail = str(r.detail).encode("utf-8", "backslashreplace").decode("utf-8")
    r.payload = _as_bytes(r.payload)
    if type(r.reason) is not Reason:
        try:
            r.reason = Reason(r.reason)
        except ValueError:
            r.detail = f"format gave the unknown reason {r.reason!r}: {r.detail}"
            r.reason = Reason.DECODE_ERROR
