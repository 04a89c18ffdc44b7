"""MQTT source on paho-mqtt 2.x: QoS 1, persistent session, PUBACK only after durable writes.

paho runs its network loop in its own thread. ``on_message`` only appends to a bounded
buffer; when the buffer is full it blocks the paho thread, which stops reading the socket, so
the broker holds further messages (TCP backpressure: configure the broker's queue limits,
see README). The asyncio side takes the buffer in chunks, submits them to the pipeline and
sends each PUBACK (``client.ack``) from the pipeline's ack callback, after the database commit.

The session is persistent (fixed client id, clean_start false, session expiry), so messages
not yet acknowledged when the process dies are redelivered by the broker on reconnect and
stored once thanks to the idempotent write. The broker sets DUP on such a redelivery: those
messages go to the pipeline as a batch of their own marked ``redelivered``, so a message that was
quarantined before the PUBACK got lost is not quarantined again (storage/quarantine_keys.py).
Before the first redelivery of a new connection goes on, everything submitted earlier is drained:
the first delivery's write may still be in flight, and the check for an existing row only sees
committed rows.

A topic that is not UTF-8 (MQTT requires it; Mosquitto refuses such a PUBLISH, a laxer broker
or bridge may forward it) is quarantined as ``invalid_utf8`` with its bytes escaped, and
acknowledged once that is durable. Before robust31 reading ``msg.topic`` raised in ``on_message``,
which ended paho's network thread: no message was received or acknowledged again, the broker
redelivered the same message to every new session, and ``/health`` still said connected.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from functools import partial

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from urbanpulse.config import MqttSettings
from urbanpulse.connectors.base import Sink
from urbanpulse.connectors.topics import TopicTemplates
from urbanpulse.formats.base import MessageBatch
from urbanpulse.metrics import IngestMetrics
from urbanpulse.model import Reason, Rejection

log = logging.getLogger(__name__)


#: how long a shutdown waits for queued PUBACKs and the DISCONNECT to be written
DISCONNECT_FLUSH_S = 5.0


class _BulkReadClient(mqtt.Client):
    """paho's client, reading every packet already buffered on the socket per wake-up.

    Stock paho handles one packet per ``select()`` when nothing is in flight from its side,
    which caps a busy subscriber at a few thousand messages/s; draining the socket costs
    nothing extra and keeps the select loop out of the per-message path.
    """

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        for _ in range(1000):
            if self._sock is None:
                return mqtt.MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == mqtt.MQTTErrorCode.MQTT_ERR_AGAIN:
                return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS


    def reconnect(self) -> mqtt.MQTTErrorCode:
        # paho swallows connection errors (refused, TLS verification) into on_connect_fail,
        # which gets no exception: keep it so operators can see why on /health.
        try:
            return super().reconnect()
        except OSError as exc:
            self.connect_error = exc
            raise


class MqttSource:
    """Subscribes to topic filters and feeds canonical JSON readings to the pipeline."""

    name = "mqtt"
    Config = MqttSettings  # its typed config: the `mqtt:` section

    def __init__(self, settings: MqttSettings, metrics: IngestMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.templates = TopicTemplates(settings.topic_templates)
        # (payload, topic, mid, generation, DUP); a topic as bytes: not UTF-8
        self._buffer: list[tuple[bytes, str | bytes, int, int, bool]] = []
        self._cond = threading.Condition()
        self._generation = 0
        self._drained_generation = 0  # the connection whose redeliveries waited for earlier writes
        self._connected = False
        self._subscribed = False
        self._refused = False
        self._stopping = False
        self._disconnected = threading.Event()
        self.last_error: str | None = None
        self._client: mqtt.Client | None = None
        self._early: mqtt.Client | None = None  # connected by start_early(), taken over by run()

    def health(self) -> dict[str, object]:
        return {"connected": self._connected and self._subscribed, "broker": f"{self.settings.host}:{self.settings.port}",
                "last_error": self.last_error}

    # -- paho thread -----------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason: mqtt.ReasonCode, properties: Properties | None) -> None:
        if reason.is_failure:
            self.last_error = f"connect refused: {reason}"
            self._refused = True
            log.error("MQTT broker refused the connection: %s", reason)
            return
        self._refused = False
        with self._cond:
            self._generation += 1
            self._connected = True
        log.info("MQTT connected to %s:%s (session present: %s)", self.settings.host, self.settings.port,
                 flags.session_present)
        client.subscribe([(t, self.settings.qos) for t in self.settings.topics])

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reasons: list[mqtt.ReasonCode],
                      properties: Properties | None) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            self.last_error = f"subscription refused: {failed}"
            log.error("MQTT broker refused subscriptions %s: %s", self.settings.topics, failed)
            return
        self._subscribed = True

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason: mqtt.ReasonCode, properties: Properties | None) -> None:
        with self._cond:
            self._connected = False
            self._subscribed = False
        self._disconnected.set()
        if not self._stopping and not self._refused:  # keep the refusal's reason visible
            self.last_error = f"disconnected: {reason}"
            log.warning("MQTT disconnected (%s); paho reconnects with backoff", reason)

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        exc = getattr(client, "connect_error", None)
        self.last_error = f"cannot connect to {self.settings.host}:{self.settings.port}: {exc}"
        log.warning("MQTT connection failed: %s; retrying with backoff", exc)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        # never raises: an exception here would end paho's network thread (see the module doc)
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = bytes(msg._topic)  # kept as bytes: quarantined by _submit
        limit = self.settings.max_buffered_messages
        with self._cond:
            while len(self._buffer) >= limit and not self._stopping:
                self._cond.wait(0.5)  # backpressure: stop reading the socket until drained
            self._buffer.append((msg.payload, topic, msg.mid, self._generation, bool(msg.dup)))
            first = len(self._buffer) == 1
        if first:
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- asyncio side ----------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        if s.protocol == "5":
            client = _BulkReadClient(mqtt.CallbackAPIVersion.VERSION2, client_id=s.client_id,
                                 protocol=mqtt.MQTTv5, manual_ack=True)
        else:
            client = _BulkReadClient(mqtt.CallbackAPIVersion.VERSION2, client_id=s.client_id,
                                 protocol=mqtt.MQTTv311, clean_session=False, manual_ack=True)
        client.max_queued_messages_set(0)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls.enabled:
            client.tls_set(ca_certs=str(s.tls.ca_file) if s.tls.ca_file else None,
                           certfile=str(s.tls.cert_file) if s.tls.cert_file else None,
                           keyfile=str(s.tls.key_file) if s.tls.key_file else None,
                           cert_reqs=ssl.CERT_NONE if s.tls.insecure_skip_verify else ssl.CERT_REQUIRED)
            client.tls_insecure_set(s.tls.insecure_skip_verify)
        client.reconnect_delay_set(min_delay=max(1, int(s.reconnect_min_s)), max_delay=max(1, int(s.reconnect_max_s)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_connect_fail = self._on_connect_fail
        return client

    def _reset(self) -> None:
        """Forget the previous run (a supervisor restarts a failed source by calling ``run`` again):
        what the old connection received but did not acknowledge, the broker redelivers."""
        with self._cond:
            self._buffer = []
            self._connected = False
            self._subscribed = False
        self._refused = False
        self._stopping = False
        self._disconnected = threading.Event()

    def _connect(self) -> mqtt.Client:
        """A new client connecting in paho's thread (connect, then subscribe in ``_on_connect``)."""
        s = self.settings
        self._reset()
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        client = self._client = self._make_client()
        if s.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = s.session_expiry_s
            props.ReceiveMaximum = 65535
            client.connect_async(s.host, s.port, keepalive=s.keepalive_s, clean_start=False, properties=props)
        else:  # persistent session via clean_session=False, set on the client
            client.connect_async(s.host, s.port, keepalive=s.keepalive_s)
        client.loop_start()
        return client

    def start_early(self) -> None:
        """Connect and subscribe now, before the pipeline exists (``urbanpulse run``,
        start_ahead.py). Messages the broker delivers meanwhile wait in the bounded buffer,
        unacknowledged, until :meth:`run` takes them. Needs a running event loop."""
        if self._early is None:
            self._early = self._connect()

    async def abandon_early(self) -> None:
        """The start failed after :meth:`start_early`: disconnect without a PUBACK (idempotent);
        the persistent session makes the broker redeliver what it had sent."""
        client, self._early = self._early, None
        if client is None:
            return
        self._stopping = True
        with self._cond:
            self._buffer = []
            self._cond.notify_all()
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._connected = False

    async def run(self, pipeline: Sink, stopping: asyncio.Event) -> None:
        client, self._early = self._early, None
        if client is None:  # not connected ahead (start_early), or a restart after a failure
            client = self._connect()
        try:
            while not stopping.is_set():
                self._wake.clear()
                with self._cond:
                    taken, self._buffer = self._buffer, []
                    self._cond.notify_all()
                if not taken:
                    stop_wait = asyncio.ensure_future(stopping.wait())
                    wake_wait = asyncio.ensure_future(self._wake.wait())
                    await asyncio.wait({stop_wait, wake_wait}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
                    stop_wait.cancel()
                    wake_wait.cancel()
                    continue
                await self._submit(pipeline, taken)
        finally:
            self._stopping = True
            with self._cond:
                self._cond.notify_all()
            await pipeline.drain()  # PUBACKs for everything written are queued before the DISCONNECT
            if self._connected:
                # paho writes queued packets in order and reports the disconnect once the DISCONNECT
                # is on the wire: stopping its thread before that can drop the PUBACKs, and the broker
                # would redeliver messages that are already stored
                self._disconnected.clear()
                client.disconnect()
                await asyncio.to_thread(self._disconnected.wait, DISCONNECT_FLUSH_S)
            else:
                client.disconnect()
            client.loop_stop()
            self._connected = False

    async def _submit(self, pipeline: Sink, taken: list[tuple[bytes, str | bytes, int, int, bool]]) -> None:
        """Hand ``taken`` to the pipeline in order: runs of first deliveries and of redeliveries (DUP)
        as batches of their own, so the redelivered ones are marked (see the module doc)."""
        start = 0
        for i in range(1, len(taken) + 1):
            if i == len(taken) or taken[i][4] != taken[start][4]:
                generation = taken[start][3]
                if taken[start][4] and generation > self._drained_generation:
                    await pipeline.drain()  # the first delivery's write committed (or never will)
                    self._drained_generation = generation
                await self._submit_run(pipeline, taken[start:i], redelivered=taken[start][4])
                start = i

    async def _submit_run(self, pipeline: Sink, taken: list[tuple[bytes, str | bytes, int, int, bool]],
                          redelivered: bool) -> None:
        bad = [t for t in taken if isinstance(t[1], bytes)]  # a topic that is not UTF-8 (_on_message)
        if bad:
            taken = [t for t in taken if not isinstance(t[1], bytes)]
            rejections = []
            for payload, raw_topic, *_ in bad:
                shown = bytes(raw_topic).decode("utf-8", "backslashreplace")  # ASCII escapes: storable
                rejections.append(Rejection(
                    Reason.INVALID_UTF8, f"the MQTT topic is not UTF-8 (MQTT requires it; the broker or a bridge "
                    f"let it through): {shown[:200]}", payload, self.name, shown, redelivered=redelivered))
            await pipeline.quarantine(self.name, rejections,  # type: ignore[attr-defined]
                                      ack=partial(self._ack, [(t[2], t[3]) for t in bad]))
            if not taken:
                return
        payloads = [t[0] for t in taken]
        topics = [t[1] for t in taken]
        acks = [(t[2], t[3]) for t in taken]
        fields = [self.templates.fields(t) for t in topics] if self.templates else None
        # everything the client had buffered was taken: nothing more to wait for
        batch = MessageBatch(source=self.name, payloads=payloads, topics=topics, topic_fields=fields,
                             received_ns=time.time_ns(), caught_up=True, redelivered=redelivered)
        await pipeline.submit(batch, ack=partial(self._ack, acks))

    def _ack(self, acks: list[tuple[int, int]]) -> None:
        """Send PUBACKs; acks of a previous connection are dropped (the broker redelivers those)."""
        client = self._client
        if client is None or not self._connected:
            return
        current = self._generation
        qos = self.settings.qos
        for mid, gen in acks:
            if gen == current:
                client.ack(mid, qos)
