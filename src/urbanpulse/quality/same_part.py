"""One quarantine row for the rejections of one part of a message that share a reason.

A CSV row with two cells that are not numbers is one item with one set of bytes as sent, rejected
twice for one reason. Its rows would be identical but for the detail; over Kafka the quarantine's key
(topic, partition, offset, item, reason, payload digest: ``storage/quarantine_keys.py``) keeps one
row of them, over MQTT and HTTP every one was a row. Joined into one row here, before the key is met,
every transport keeps one row naming every cell (newcomer46).

A part's rejections come one after another (its readings are decoded together), though its reasons
may alternate (a row's cells: bad, good, bad): each is looked up among its part's run only, in a dict
made when the run has a second rejection, so a message of many parts (or one part of many fields)
costs one comparison, or one lookup, a rejection.
"""

from __future__ import annotations

from urbanpulse.model import Reason, Rejection

#: between the joined details of one row
JOIN = "; "
#: a joined detail names cells until it is this long, then counts the rest: one line-protocol line of
#: 30,000 unknown fields (``hostile33``) is one row whose detail stays this size, not 2 MB
DETAIL_CAP = 2000


class _Joined:
    """One row's joined detail: the details named (each once), and how many more were left out."""

    __slots__ = ("named", "text", "more")

    def __init__(self, detail: str) -> None:
        self.named = {detail}
        self.text = detail  # the named details, joined
        self.more = 0


class PartRun:
    """The rejections of one part (message, item) met so far, by (reason, bytes)."""

    __slots__ = ("first", "by_key", "_joined")

    def __init__(self, first: Rejection) -> None:
        self.first = first
        self.by_key: dict[tuple[Reason, bytes], Rejection] | None = None
        self._joined: dict[int, _Joined] = {}

    def join(self, r: Rejection) -> bool:
        """Join ``r`` (a rejection of this run's part) into the one rejecting the same bytes for its reason, if
        there is one: that one's detail then names both (repeats kept once; past :data:`DETAIL_CAP` characters
        it counts the others instead). False when there is none."""
        if self.by_key is None:
            f = self.first
            self.by_key = {(f.reason, bytes(f.payload)): f}
        key = (r.reason, bytes(r.payload))
        prev = self.by_key.get(key)
        if prev is None:
            self.by_key[key] = r
            return False
        joined = self._joined.get(id(prev))
        if joined is None:
            joined = self._joined[id(prev)] = _Joined(prev.detail)
        if r.detail in joined.named:
            return True
        if len(joined.text) + len(JOIN) + len(r.detail) <= DETAIL_CAP:
            joined.named.add(r.detail)
            joined.text = f"{joined.text}{JOIN}{r.detail}"
            prev.detail = joined.text
        else:
            joined.named.add(r.detail)
            joined.more += 1
            prev.detail = f"{joined.text}{JOIN}and {joined.more} more of this reason in this part"
        return True


def join_same_parts(rejections: list[Rejection], start: int = 0) -> None:
    """Join, in place, the rejections from ``start`` on (one message's) that reject one part (item) for one
    reason with the same bytes into the first of them (see :class:`PartRun`)."""
    if len(rejections) - start < 2:
        return
    tail = rejections[start:]
    out = tail[:1]
    run = PartRun(tail[0])
    for r in tail[1:]:
        if r.item == run.first.item:
            if run.join(r):
                continue
        else:
            run = PartRun(r)
        out.append(r)
    if len(out) < len(tail):
        rejections[start:] = out
