"""Shared by the LoRaWAN network-server formats: numeric leaves of a decoded payload object."""

from __future__ import annotations

from collections.abc import Iterator

from urbanpulse.formats.vendor import as_number


def numeric_leaves(obj: object, prefix: str = "", depth: int = 0,
                   keys: tuple[str, ...] = ()) -> Iterator[tuple[str, object, tuple[str, ...]]]:
    """(flattened key, value, keys) for every leaf of a decoded payload; nested keys join with
    ``_`` in the name, and ``keys`` is the leaf's path of keys as parsed (to quarantine the field
    as sent: urbanpulse.formats.as_sent).

    Lists are skipped (byte arrays, multi-value records): they are not one reading. Non-numeric
    leaves are yielded too, so the caller can skip or reject them per its options.
    """
    if not isinstance(obj, dict) or depth > 4:
        return
    for key, value in obj.items():
        name = f"{prefix}_{key}" if prefix else str(key)
        if isinstance(value, dict):
            yield from numeric_leaves(value, name, depth + 1, (*keys, key))
        elif isinstance(value, list):
            continue
        else:
            yield name, value, (*keys, key)


def number_or_none(value: object) -> float | None:
    """A JSON number as float; None for text, booleans, null."""
    return as_number(value)
