"""Shared by the LoRaWAN network-server formats: numeric leaves of a decoded payload object."""

from __future__ import annotations

from collections.abc import Iterator

from urbanpulse.formats.vendor import as_number


def numeric_leaves(obj: object, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, object]]:
    """(flattened key, value) for every leaf of a decoded payload; nested keys join with ``_``.

    Lists are skipped (byte arrays, multi-value records): they are not one reading. Non-numeric
    leaves are yielded too, so the caller can skip or reject them per its options.
    """
    if not isinstance(obj, dict) or depth > 4:
        return
    for key, value in obj.items():
        name = f"{prefix}_{key}" if prefix else str(key)
        if isinstance(value, dict):
            yield from numeric_leaves(value, name, depth + 1)
        elif isinstance(value, list):
            continue
        else:
            yield name, value


def number_or_none(value: object) -> float | None:
    """A JSON number as float; None for text, booleans, null."""
    return as_number(value)
