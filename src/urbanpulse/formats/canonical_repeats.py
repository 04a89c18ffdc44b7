"""Whether canonical JSON readings send one of their fields twice: settled in C for the usual batch.

The canonical format reads seven fields (``sensor_id``, ``metric``, ``ts``, ``value``, ``lat``, ``lon``,
``unit``) and ignores every other key. A reading that sends one of the seven twice is quarantined as
``duplicate_key`` (formats/duplicate_keys.py); a repeat of a key it ignores loses nothing and is let be.

What decides is :func:`sends_a_field_twice`, a parse that sees each object's members. It runs only where
the counts below cannot rule a repeat out, so every path (the whole batch, message by message, the slow
path) gives a message the same outcome. In a text without a backslash:

1. the quote characters: two per key and two per string; the batch's readings account for all of them unless
   a key was dropped, or a key the format ignores or an explicit ``null`` was sent (:func:`quotes_of_readings`);
2. else each field's name in quotes (``"value"``): ``ts`` and ``value`` once per reading (msgspec refuses a
   reading without them), the other five once per reading that has them not None;
3. else, where explicit nulls make those differ, a decode into :class:`_Sent`, which tells a null from an
   absent field, says how many readings sent each.

A count that still differs (a name sent as a string value, ``"metric": "value"``, or nested in an ignored
key's object) only means "look".
"""

from __future__ import annotations

from datetime import datetime
from operator import attrgetter

import msgspec

from urbanpulse.formats import duplicate_keys

FIELDS = frozenset({"sensor_id", "metric", "ts", "value", "lat", "lon", "unit"})
#: sent once by every reading
_REQUIRED = (b'"ts"', b'"value"')
#: sent or not (``sensor_id`` and ``metric`` may come from an MQTT topic template)
OPTIONAL = ("sensor_id", "metric", "lat", "lon", "unit")
_OPTIONAL = tuple(b'"%s"' % f.encode() for f in OPTIONAL)
_GET = tuple(map(attrgetter, OPTIONAL))
_TS = attrgetter("ts")


class _Sent(msgspec.Struct, omit_defaults=True):
    """Which optional fields a reading sent, null or not (UNSET: absent); encoded, it names exactly those."""

    sensor_id: str | None | msgspec.UnsetType = msgspec.UNSET
    metric: str | None | msgspec.UnsetType = msgspec.UNSET
    lat: float | None | msgspec.UnsetType = msgspec.UNSET
    lon: float | None | msgspec.UnsetType = msgspec.UNSET
    unit: str | None | msgspec.UnsetType = msgspec.UNSET


_SENT = msgspec.json.Decoder(_Sent | list[_Sent])
_ENCODE = msgspec.json.Encoder().encode


def not_null(objs: list) -> tuple[int, ...]:
    """How many of ``objs`` (decoded readings) have each of :data:`OPTIONAL` not None."""
    n = len(objs)
    return tuple(n - list(map(get, objs)).count(None) for get in _GET)


def quotes_of_readings(objs: list, present: tuple[int, ...]) -> int:
    """The quote characters ``objs`` account for without their ``ts`` texts: two per key and string, ``ts`` and
    ``value`` keys in every reading, ``present`` (:func:`not_null`) the others'."""
    sid, metric, lat, lon, unit = present
    return 2 * (2 * len(objs) + 2 * sid + 2 * metric + lat + lon + 2 * unit)


def _ts_texts(objs: list) -> int:
    """How many of ``objs`` sent ``ts`` as text (two quote characters each)."""
    return list(map(type, map(_TS, objs))).count(datetime)


def may_send_twice(payloads: list[bytes], objs: list, present: tuple[int, ...] | None = None) -> bool:
    """False where the messages ``payloads`` (whose readings are ``objs``, ``present`` of them have each of
    :data:`OPTIONAL` not None: :func:`not_null` if not given) certainly send no field twice; True: some may,
    :func:`sends_a_field_twice` must look."""
    try:
        data = payloads[0] if len(payloads) == 1 else b"".join(payloads)
    except TypeError:
        return True
    data = bytes(data)
    if b"\\" in data:  # an escape may spell a name two ways (``"\u0076alue"``)
        return True
    if present is None:
        present = not_null(objs)
    quotes = data.count(b'"')
    base = quotes_of_readings(objs, present)
    if quotes == base or (quotes > base and quotes == base + 2 * _ts_texts(objs)):
        return False
    count = data.count
    n = len(objs)
    if any(count(token) != n for token in _REQUIRED):
        return True
    sent = [count(token) for token in _OPTIONAL]
    if sent == list(present):
        return False
    try:
        parsed = list(map(_SENT.decode, payloads))
    except (msgspec.ValidationError, msgspec.DecodeError, TypeError):
        return True
    encoded = _ENCODE(parsed)
    return [encoded.count(token) for token in _OPTIONAL] != sent


def sends_a_field_twice(text: str) -> str | None:
    """The first of the canonical fields that some object of ``text`` sends twice, or None (the decision)."""
    return duplicate_keys.repeated_key(text, FIELDS)
