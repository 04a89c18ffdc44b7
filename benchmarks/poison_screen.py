"""What the poison guard costs an MQTT batch per message (ingest42): no suspects, and one MQTT
poison suspect kept on another topic (kept until ``forget_after_s`` since ingest42; on main only
until its quarantine's ack). A no-op pipeline, so only the guard is timed.

    PYTHONPATH=src python benchmarks/poison_screen.py      # alternate with main's tree for an A/B
"""

from __future__ import annotations

import asyncio
import time

from urbanpulse.connectors.poison import PoisonGuard
from urbanpulse.connectors.suspects import Suspect, message_key, payload_hash
from urbanpulse.formats.base import MessageBatch

BATCH = 500
ROUNDS = 200


class _Nop:
    async def submit(self, batch: MessageBatch, ack: object = None) -> None:
        pass

    async def quarantine(self, source: str, rejections: list, ack: object = None) -> None:
        pass


class _NoStore:
    async def forget(self, source: str, keys: list[str]) -> None:
        pass


def _batch(n: int) -> MessageBatch:
    payloads = [b'{"sensor_id":"s%05d","metric":"temperature","ts":1733300000000,"value":21.5}' % i for i in range(n)]
    return MessageBatch("mqtt", payloads, topics=[f"city/st{i % 50}/s{i}" for i in range(n)])


async def _ns_per_message(with_suspect: bool) -> float:
    """Best of :data:`ROUNDS` submits of one batch, in ns a message."""
    guard = PoisonGuard(_NoStore(), 3600)  # type: ignore[arg-type]
    if with_suspect:
        sha = payload_hash(b"poison")
        key = message_key("city/elsewhere", None, None, sha)
        guard.suspects = {"mqtt": {key: Suspect(key, "city/elsewhere", None, None, sha, 1, True, "x")}}
    view = guard.view("mqtt", _Nop())  # type: ignore[arg-type]
    batch = _batch(BATCH)
    best = float("inf")
    for _ in range(ROUNDS):
        t = time.perf_counter()
        await view.submit(batch)
        best = min(best, time.perf_counter() - t)
    return best / BATCH * 1e9


def main() -> None:
    for with_suspect in (False, True, False, True):
        ns = asyncio.run(_ns_per_message(with_suspect))
        print("one MQTT suspect" if with_suspect else "no suspects", f"{ns:.0f} ns/message")


if __name__ == "__main__":
    main()
