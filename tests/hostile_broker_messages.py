"""Generated messages of every JSON and text format, good and bad parts mixed, with what must become
of each part (payload45; used by tests/test_hostile_broker_formats.py).

Each message knows its sensor id as stored, how many readings it must store, and for each part
that must be quarantined its item, its reason and its bytes as sent: a record, field, line or row
as it appears in the message (a vendor object's field within its parents' keys, ``{"x":{"t": 1}}``),
or the whole message (item -1) when the message itself is broken (truncated, not UTF-8, too deep,
too large). Numbers are written the many ways JSON allows (``21``, ``2.15e1``, ``21.50``, ``-0``),
with whitespace between tokens, escaped keys, duplicate keys (the whole message is then one
``duplicate_key`` row: product47; before, the last member won and the first vanished), and values parsers disagree on (``NaN``, ``Infinity``, ``1e309``, ``1e-320``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from test_senml_record_bytes import packs as senml_packs

#: formats of the generated messages (senml_cbor's rows are its records re-encoded: not as sent)
FORMATS = ["json", "senml", "ttn_v3", "chirpstack_v4", "owntracks", "sensor_community", "influx_line", "csv"]
#: options the formats need (CSV declares its columns)
OPTIONS = {"csv": {"sensor_id": "sensor", "ts": "time", "time_format": "epoch_s", "values": {"pm25": "pm2_5"}}}

SPACES = ["", " ", "\n", "\t", "  "]
GOOD_NUMBERS = ["21", "21.5", "2.15e1", "21.50", "1.8E1", "3.25", "-0", "40"]
#: a bad field's value as JSON text, and the reason (the metric's range is 0..100 for humidity)
BAD_VALUES = {"NaN": "non_finite", "Infinity": "non_finite", "-Infinity": "non_finite", "1e309": "non_finite",
              "-1e309": "non_finite", "1e-320": "out_of_range", "1e5": "out_of_range", "-5": "out_of_range"}
#: vendor object field names of distinct catalogue metrics (0..100 fits each)
VENDOR_FIELDS = ["humidity", "pm2_5", "pm10", "battery", "temperature"]
#: escaped spellings of a field name (JSON `\\u` escapes decode to the same key)
ESCAPED = {"humidity": "hum\\u0069dity", "pm10": "pm\\u00310", "battery": "batt\\u0065ry"}


@dataclass
class Message:
    """One generated message and what must become of it."""

    fmt: str
    body: bytes
    sensor: str  # the stored readings' sensor id
    good: int = 0  # readings it must store
    bad: list[tuple[int, str, bytes]] = field(default_factory=list)  # (item, reason, bytes as sent)
    drawn: list[str] = field(default_factory=list)
    owntracks_topic: str | None = None  # over MQTT: the topic that names the sensor


def _gap(draw: Any) -> str:
    return draw(st.sampled_from(SPACES))


def _whole(draw: Any, msg: Message) -> Message:
    """Now and then, break the whole message: it is then one row (item -1) of its bytes as sent."""
    how = draw(st.sampled_from(["keep"] * 6 + ["truncate", "utf8", "deep", "oversize", "empty"]))
    if how == "keep" or (how == "truncate" and msg.fmt in ("influx_line", "csv")):  # a cut text is still text
        return msg
    msg.drawn.append(how)
    body = msg.body
    if how == "truncate":
        body = body[:draw(st.integers(1, max(1, len(body) - 1)))]
        reason = "invalid_json"
    elif how == "utf8":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xfe\xff"])) + body[at:]
        reason = "invalid_utf8"
    elif how == "deep":
        depth = draw(st.integers(17, 3000))
        body = b"[" * depth + body + b"]" * depth
        reason = "too_deep"
    elif how == "oversize":
        body = body + b" " * (256 * 1024 + 1 - len(body))
        reason = "payload_too_large"
    else:
        body, reason = b"", "empty_payload"
    if msg.fmt in ("influx_line", "csv") and how == "utf8":
        return msg  # a line/row that is not UTF-8 costs that line only (input35): not a whole-message case
    if msg.fmt in ("influx_line", "csv") and how == "deep":
        return msg
    return Message(msg.fmt, body, msg.sensor, 0, [(-1, reason, body)], msg.drawn, msg.owntracks_topic)


# -- canonical JSON ---------------------------------------------------------------------------------

CANONICAL_BAD = {"NaN": "non_finite", "1e309": "non_finite", '"21"': "bad_type", "true": "bad_type",
                 "1e-320": "out_of_range", "1e5": "out_of_range"}


@st.composite
def canonical(draw: Any, sensor: str, now_s: int) -> Message:
    """A canonical JSON array of readings, one reading a second."""
    msg = Message("json", b"", sensor)
    items = []
    for j in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["good", "good", "bad", "unknown", "old", "not_object"]))
        msg.drawn.append(kind)
        ts = str((now_s - j) * 1000)
        if kind == "not_object":
            text = draw(st.sampled_from(["5", "null", '"x"', "[1]"]))
            msg.bad.append((j, "not_an_object", text.encode()))
            items.append(text)
            continue
        metric, value = '"humidity"', draw(st.sampled_from(GOOD_NUMBERS))
        if kind == "bad":
            value = draw(st.sampled_from(sorted(CANONICAL_BAD)))
        elif kind == "unknown":
            metric = '"no_such_metric"'
        elif kind == "old":
            ts = '"2001-01-01T00:00:00Z"'
        fields = [("sensor_id", json.dumps(sensor)), ("metric", metric), ("ts", ts), ("value", value)]
        fields = draw(st.permutations(fields))
        g = _gap(draw)
        text = "{" + ",".join(f'{g}"{k}"{g}:{g}{v}{g}' for k, v in fields) + "}"
        items.append(text)
        if kind == "good":
            msg.good += 1
        else:
            reason = {"bad": CANONICAL_BAD.get(value), "unknown": "unknown_metric", "old": "too_old"}[kind]
            msg.bad.append((j, reason, text.encode()))
    g = _gap(draw)
    msg.body = ("[" + ",".join(g + i + g for i in items) + "]").encode()
    return _whole(draw, msg)


# -- SenML (payload44's generator) --------------------------------------------------------------------


@st.composite
def senml(draw: Any, sensor: str, now_s: int) -> Message:
    """A SenML JSON pack (tests/test_senml_record_bytes.py's packs; its times are relative to now)."""
    pack = draw(senml_packs(sensor))
    msg = Message("senml", pack.body, sensor, len(pack.good),
                  [(j, reason, raw) for j, (raw, reason) in pack.bad.items()], list(pack.drawn))
    return _whole(draw, msg)


# -- vendor objects: TTS, ChirpStack, OwnTracks --------------------------------------------------------


def _vendor_fields(draw: Any, msg: Message, names: list[str], allow_unknown: bool,
                   nest: bool) -> tuple[str, list[tuple[str, bytes]]]:
    """An object's members (as text) of good and bad fields; returns the object and, in order of the
    reader's items, (outcome, row bytes); ``nest`` puts some fields in a nested object."""
    members: list[str] = []
    outcomes: list[tuple[str, bytes]] = []
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    for name in chosen:
        kind = draw(st.sampled_from(["good", "good", "bad", "text", "dup"] + (["unknown"] if allow_unknown else [])))
        msg.drawn.append(f"{name}:{kind}")
        g = _gap(draw)
        key = ESCAPED.get(name, name) if draw(st.booleans()) else name
        value = draw(st.sampled_from(GOOD_NUMBERS))
        if kind == "bad":
            value = draw(st.sampled_from(sorted(BAD_VALUES)))
        elif kind == "text":
            value = '"21"'  # not a number: skipped (non_numeric: skip, the default)
        elif kind == "unknown":
            key = "no_such_" + name
        member = f'"{key}"{g}:{g}{value}'
        if kind == "dup":  # the same key twice: the message is quarantined duplicate_key (_repeated)
            members.append(f'"{key}":{g}{draw(st.sampled_from(sorted(BAD_VALUES)))}')
        row = ("{" + member + "}").encode()
        wrapped = nest and kind == "good" and draw(st.booleans())
        if wrapped:  # {"g1": {"<key>": v}}: the reading's name is g1_<key>, unknown to the catalogue;
            outer = f'"g{len(members)}"{g}:{g}'  # its row: the member within its parent's key as sent
            row = ("{" + outer + "{" + member + "}}").encode()
            member = f'{outer}{{{g}{member}{g}}}'
            kind = "unknown"
        members.append(member)
        if kind in ("good", "dup"):
            outcomes.append(("good", row))
        elif kind == "text":
            outcomes.append(("skip", row))
        elif kind == "unknown":
            outcomes.append(("unknown_metric", row))
        else:
            outcomes.append((BAD_VALUES[value], row))
    g = _gap(draw)
    return "{" + ",".join(g + m + g for m in members) + "}", outcomes


def _count(msg: Message, outcomes: list[tuple[str, bytes]], first_item: int = 0) -> None:
    for j, (outcome, row) in enumerate(outcomes, first_item):
        if outcome == "good":
            msg.good += 1
        elif outcome != "skip":
            msg.bad.append((j, outcome, row))


def _repeated(msg: Message) -> None:
    """A message with a key sent twice is one ``duplicate_key`` row of its bytes as sent, nothing stored."""
    if any(d.endswith(":dup") for d in msg.drawn):
        msg.good, msg.bad = 0, [(-1, "duplicate_key", msg.body)]


def _iso(t: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


@st.composite
def ttn(draw: Any, sensor: str, now_s: int) -> Message:
    """A TTS v3 uplink whose decoded_payload mixes good and bad fields."""
    msg = Message("ttn_v3", b"", sensor)
    obj, outcomes = _vendor_fields(draw, msg, VENDOR_FIELDS, True, True)
    _count(msg, outcomes)
    msg.body = ('{"end_device_ids":{"device_id":%s,"application_ids":{"application_id":"a"}},'
                '"received_at":"%s","uplink_message":{"f_port":1,"decoded_payload":%s,"received_at":"%s"}}'
                % (json.dumps(sensor), _iso(now_s), obj, _iso(now_s))).encode()
    _repeated(msg)
    return _whole(draw, msg)


@st.composite
def chirpstack(draw: Any, sensor: str, now_s: int) -> Message:
    """A ChirpStack v4 up event whose object mixes good and bad fields."""
    msg = Message("chirpstack_v4", b"", sensor)
    obj, outcomes = _vendor_fields(draw, msg, VENDOR_FIELDS, True, True)
    _count(msg, outcomes)
    msg.body = ('{"time":"%s","deviceInfo":{"devEui":%s,"deviceName":"n"},"fPort":1,"object":%s}'
                % (_iso(now_s), json.dumps(sensor), obj)).encode()
    _repeated(msg)
    return _whole(draw, msg)


@st.composite
def owntracks(draw: Any, sensor: str, now_s: int) -> Message:
    """An OwnTracks location with its battery, speed and pressure elements good or bad."""
    msg = Message("owntracks", b"", sensor, owntracks_topic=f"owntracks/{sensor}")  # sensor is <user>/<device>
    members, outcomes = [], []
    for item, (element, good) in enumerate([("batt", "76"), ("vel", "18"), ("p", "101.3")]):
        kind = draw(st.sampled_from(["good", "bad", "absent"]))
        msg.drawn.append(f"{element}:{kind}")
        if kind == "absent":
            continue
        g = _gap(draw)
        value = good if kind == "good" else draw(st.sampled_from(["NaN", "Infinity", "1e309", "-1e309"]))
        member = f'"{element}"{g}:{g}{value}'
        members.append(member)
        outcomes.append((item, "good" if kind == "good" else "non_finite", ("{" + member + "}").encode()))
    for item, outcome, row in outcomes:
        if outcome == "good":
            msg.good += 1
        else:
            msg.bad.append((item, outcome, row))
    head = ['"_type":"location"', f'"tid":{json.dumps(sensor)}', '"lat":48.8583', '"lon":2.2945', f'"tst":{now_s}']
    parts = draw(st.permutations(head + members))
    msg.body = ("{" + ",".join(parts) + "}").encode()
    return _whole(draw, msg)


# -- Sensor.Community ---------------------------------------------------------------------------------


@st.composite
def sensor_community(draw: Any, sensor: str, now_s: int) -> Message:
    """A push whose sensordatavalues mixes good and bad items (values are decimal text)."""
    chip = sensor.removeprefix("esp8266-")
    msg = Message("sensor_community", b"", sensor)
    items = []
    kinds = ["SDS_P1", "SDS_P2", "BME280_humidity", "BME280_temperature"]
    for j, kind in enumerate(draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=4, unique=True))):
        how = draw(st.sampled_from(["good", "good", "bad", "text", "not_object"]))
        msg.drawn.append(f"{kind}:{how}")
        g = _gap(draw)
        if how == "not_object":
            text = draw(st.sampled_from(["5", "null", '"SDS_P1"', '{"value":"1"}']))
            items.append(text)
            msg.bad.append((j, "bad_type", text.encode()))
            continue
        value = {"good": '"14.20"', "bad": draw(st.sampled_from(['"NaN"', '"1e309"', '"-5"', '"Infinity"'])),
                 "text": '"n/a"'}[how]
        text = f'{{"value_type"{g}:{g}"{kind}",{g}"value":{g}{value}}}'
        items.append(text)
        if how == "good":
            msg.good += 1
        else:
            reason = "bad_type" if how == "text" else "out_of_range" if value == '"-5"' else "non_finite"
            msg.bad.append((j, reason, text.encode()))
    g = _gap(draw)
    msg.body = ('{"esp8266id":%s,"software_version":"NRZ-2020-129","timestamp":"%s","sensordatavalues":[%s]}'
                % (json.dumps(chip), _iso(now_s), ",".join(g + i + g for i in items))).encode()
    return _whole(draw, msg)


# -- line protocol and CSV ----------------------------------------------------------------------------


@st.composite
def line_protocol(draw: Any, sensor: str, now_s: int) -> Message:
    """Lines of one field each, good and bad (one reading a second)."""
    msg = Message("influx_line", b"", sensor)
    lines = []
    for j in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["good", "good", "inf", "nan", "range", "old", "float_ts", "unknown"]))
        msg.drawn.append(kind)
        ts = (now_s - j) * 10 ** 9
        value = {"good": draw(st.sampled_from(["21", "21.5", "2.15e1", "40i", "-0"])), "inf": "1e309",
                 "nan": "NaN", "range": "1e5"}.get(kind, "21")
        metric = "no_such_metric" if kind == "unknown" else "humidity"
        stamp = {"old": "946684799000000000", "float_ts": f"{ts}.5"}.get(kind, str(ts))
        text = f"air,sensor_id={sensor} {metric}={value} {stamp}"
        lines.append(text)
        reason = {"inf": "non_finite", "nan": "malformed", "range": "out_of_range", "old": "too_old",
                  "float_ts": "malformed", "unknown": "unknown_metric"}.get(kind)
        if reason is None:
            msg.good += 1
        else:
            msg.bad.append((j, reason, text.encode()))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    msg.body = (end.join(lines) + draw(st.sampled_from(["", end]))).encode()
    return msg


@st.composite
def csv_rows(draw: Any, sensor: str, now_s: int) -> Message:
    """A CSV body (header ``sensor,time,pm25``) of good and bad rows (one reading a second)."""
    msg = Message("csv", b"", sensor)
    rows = ["sensor,time,pm25"]
    for j in range(1, draw(st.integers(1, 6)) + 1):
        kind = draw(st.sampled_from(["good", "good", "inf", "range", "old", "hex", "short", "long"]))
        msg.drawn.append(kind)
        value = {"good": draw(st.sampled_from(["21", "21.5", "2.15e1", '"40"', "-0"])), "inf": "1e309",
                 "range": "-5", "hex": "0x10"}.get(kind, "21")
        ts = 946684799 if kind == "old" else now_s - j
        text = f"{sensor},{ts},{value}"
        text = {"short": f"{sensor},{ts}", "long": f"{text},1"}.get(kind, text)
        rows.append(text)
        reason = {"inf": "non_finite", "range": "out_of_range", "old": "too_old", "hex": "bad_type",
                  "short": "malformed", "long": "malformed"}.get(kind)
        if reason is None:
            msg.good += 1
        else:
            msg.bad.append((j, reason, text.encode()))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    msg.body = (end.join(rows) + end).encode()
    return msg


GENERATORS = {"json": canonical, "senml": senml, "ttn_v3": ttn, "chirpstack_v4": chirpstack, "owntracks": owntracks,
              "sensor_community": sensor_community, "influx_line": line_protocol, "csv": csv_rows}


def sensor_for(fmt: str, name: str) -> str:
    """The sensor id a message of ``fmt`` is stored under (Sensor.Community prefixes the chip id)."""
    return f"esp8266-{name}" if fmt == "sensor_community" else f"{name}/phone" if fmt == "owntracks" else name


@st.composite
def messages(draw: Any, fmt: str, name: str, now_s: int) -> Message:
    """One generated message of ``fmt`` for the sensor named ``name``."""
    return draw(GENERATORS[fmt](sensor_for(fmt, name), now_s))
