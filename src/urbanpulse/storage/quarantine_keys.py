"""What makes two quarantine rows the same message, so a redelivery adds no row and distinct bad
input never shares one (migration 139).

Kafka: a record is named by (topic, partition, offset, item), but a hostile record batch can repeat
an offset delta (0, 1, 1, 3: two records at offset 1, benchmarks/README.md ``hostile36``). Keyed on
the offset alone the second record's row was dropped as a redelivery: bad input lost without a
trace. The key now also holds the row's payload digest: two records at one offset with different
bytes are two rows, and a redelivery of the batch (the log's bytes do not change) hits the same keys.
Two records at one offset with the very same bytes stay one row, as two identical readings are one.

MQTT has no message identity across deliveries (a packet id is per connection), but the broker
marks a redelivery with DUP (the consumer may have stored it and lost the PUBACK). A rejection of
such a PUBLISH is inserted only if no row of the same source, topic, item and payload is there yet,
looked up through the digest index below. A first delivery (DUP clear) always gets its row: a sensor
that sends the same bad bytes twice sent two messages as far as anyone can tell. HTTP rows are not
in that index: nothing redelivers them, and a body of many bad lines would pay ~3-4 us a row in
PostgreSQL for it (as much as reject39 took off the service's side; benchmarks/README.md ``dup39``).

The reason is part of the key too (migration 140, newcomer46): a CSV row with a bad ``pm25`` cell (``bad_type``)
and an out-of-range ``no2`` (``out_of_range``) is one item with one set of bytes as sent, and keyed without the
reason its second rejection was dropped over Kafka as if it were a redelivery of the first (over MQTT and HTTP
both rows were written). Now every reason of an item is a row of its own on every transport; rejections of one
item with one reason and the same bytes (two bad cells of one row) are one row whose detail names each
(``quality/same_part.py``), so the transports agree on that too.
"""

from __future__ import annotations

QUARANTINE_KEYS_SQL = """
DROP INDEX quarantine_kafka_message;
CREATE UNIQUE INDEX quarantine_kafka_message ON quarantine (topic, kafka_partition, kafka_offset, item, md5(payload))
    WHERE kafka_offset IS NOT NULL;
CREATE INDEX quarantine_message_digest ON quarantine (md5(payload)) WHERE kafka_offset IS NULL AND source <> 'http';
"""

#: migration 140: the Kafka key holds the reason (see the module's docstring)
QUARANTINE_REASON_KEY_SQL = """
DROP INDEX quarantine_kafka_message;
CREATE UNIQUE INDEX quarantine_kafka_message
    ON quarantine (topic, kafka_partition, kafka_offset, item, reason, md5(payload)) WHERE kafka_offset IS NOT NULL;
"""

_COLUMNS = "source, topic, kafka_partition, kafka_offset, item, reason, detail, payload, payload_size"
_ROWS = """unnest($1::text[], $2::text[], $3::int4[], $4::int8[], $5::int4[], $6::text[], $7::text[],
                     $8::bytea[], $9::int4[])"""

#: every row but one a Kafka redelivery already wrote (the unique key above)
INSERT_SQL = f"""
INSERT INTO quarantine ({_COLUMNS})
SELECT * FROM {_ROWS}
ON CONFLICT (topic, kafka_partition, kafka_offset, item, reason, md5(payload)) WHERE kafka_offset IS NOT NULL DO NOTHING
"""

#: rows of possibly redelivered messages (MQTT DUP): only those not there yet
INSERT_REDELIVERED_SQL = f"""
INSERT INTO quarantine ({_COLUMNS})
SELECT DISTINCT ON (md5(u.payload), u.source, u.topic, u.item, u.reason) u.*
  FROM {_ROWS} AS u({_COLUMNS})
 WHERE u.kafka_offset IS NOT NULL OR NOT EXISTS (
       SELECT 1 FROM quarantine q
        WHERE q.kafka_offset IS NULL AND q.source <> 'http' AND md5(q.payload) = md5(u.payload)
          AND q.payload = u.payload
          AND q.source = u.source AND q.topic IS NOT DISTINCT FROM u.topic AND q.item = u.item
          AND q.reason = u.reason)
ON CONFLICT (topic, kafka_partition, kafka_offset, item, reason, md5(payload)) WHERE kafka_offset IS NOT NULL DO NOTHING
"""
