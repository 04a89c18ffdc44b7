"""MQTT topic templates: ``city/{district}/{sensor_id}/{metric}`` -> fields of a reading."""

from __future__ import annotations

import re

from urbanpulse.errors import ConfigError

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TopicTemplates:
    """Matches topics against templates (first match wins) and caches per topic string."""

    def __init__(self, templates: list[str]) -> None:
        self._patterns: list[re.Pattern[str]] = []
        for t in templates:
            if "+" in t or "#" in t:
                raise ConfigError(f"topic template {t!r}: use {{name}} placeholders, not MQTT wildcards")
            parts = []
            pos = 0
            for m in _PLACEHOLDER.finditer(t):
                parts.append(re.escape(t[pos:m.start()]))
                parts.append(f"(?P<{m.group(1)}>[^/]+)")
                pos = m.end()
            parts.append(re.escape(t[pos:]))
            self._patterns.append(re.compile("".join(parts) + r"$"))
        self._cache: dict[str, dict[str, str] | None] = {}

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def fields(self, topic: str) -> dict[str, str] | None:
        """The placeholders filled from ``topic``, or None if no template matches."""
        try:
            return self._cache[topic]
        except KeyError:
            pass
        found = None
        for p in self._patterns:
            m = p.match(topic)
            if m:
                found = m.groupdict()
                break
        if len(self._cache) < 100_000:
            self._cache[topic] = found
        return found
