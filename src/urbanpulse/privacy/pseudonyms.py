"""Keyed pseudonyms: HMAC-SHA256 of (rotation period, device id) under a key kept outside the database.

Without the key a pseudonym cannot be linked to its device (nor two periods' pseudonyms to each
other); with it, anyone can compute the pseudonym of a known id for a period, which is the
re-identification procedure of docs/privacy.md. The period comes from each reading's event time,
so a redelivered reading gets the same pseudonym and is stored once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

import numpy as np

from urbanpulse.errors import ConfigError

PREFIX = "psn-"
MIN_KEY_BYTES = 16
_DAY_US = 86_400_000_000
_INVALID = np.iinfo(np.int64).min


def load_key(key_file: Path | None, key_env: str) -> bytes | None:
    """The pseudonym key from ``key_file`` or else the environment variable ``key_env``; None when
    neither is set. Raises :class:`ConfigError` for an unreadable or too short key."""
    if key_file is not None:
        try:
            key = Path(key_file).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"privacy.key_file {key_file}: cannot read the pseudonym key ({exc.strerror})") from exc
        where = f"privacy.key_file {key_file}"
    else:
        text = os.environ.get(key_env)
        if not text:
            return None
        key = text.strip().encode()
        where = f"environment variable {key_env}"
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{where}: the pseudonym key must be at least {MIN_KEY_BYTES} bytes; make one with "
                          "`openssl rand -hex 32`")
    return key


class Pseudonymiser:
    """Maps device ids to pseudonyms, batch-shaped: one HMAC per distinct (period, id), cached."""

    def __init__(self, key: bytes, rotation: str = "month", cache_size: int = 200_000) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"the pseudonym key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self.rotation = rotation
        self.cache_size = cache_size
        self._cache: dict[tuple[int, str], str] = {}
        self.hmacs = 0  # how many were computed (the cache works when this stays small)

    def pseudonym(self, device_id: str, period: str) -> str:
        """The pseudonym of ``device_id`` in the period labelled ``period`` (see :meth:`period_label`)."""
        digest = hmac.new(self._key, f"{period}\x00{device_id}".encode("utf-8", "surrogatepass"),
                          hashlib.sha256).digest()
        return PREFIX + base64.b32encode(digest[:15]).decode("ascii").lower()

    def period_codes(self, ts_us: np.ndarray) -> np.ndarray:
        """Per event time (µs since the epoch, float or int), an int64 code of its rotation period."""
        ts = np.asarray(ts_us, dtype=np.float64)
        ok = np.isfinite(ts)
        days = np.floor(np.where(ok, ts, 0.0) / _DAY_US).astype(np.int64)
        r = self.rotation
        if r == "never":
            code = np.zeros(len(ts), np.int64)
        elif r == "day":
            code = days
        elif r == "week":
            code = (days + 3) // 7  # weeks from Monday (1970-01-01 was a Thursday)
        elif r == "month":
            code = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
        else:  # year
            code = days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64)
        code[~ok] = _INVALID
        return code

    def period_label(self, code: int) -> str:
        """The text of a period code as it enters the HMAC: ``2026-11``, ``2026-W48`` ... ``all``."""
        if code == _INVALID:
            return "invalid-time"
        r = self.rotation
        if r == "never":
            return "all"
        if r == "day":
            return str(np.datetime64(code, "D"))
        if r == "week":
            monday = np.datetime64(code * 7 - 3, "D")
            return f"week-of-{monday}"
        if r == "month":
            return str(np.datetime64(code, "M"))
        return str(np.datetime64(code, "Y"))

    def label_of(self, ts_us: float) -> str:
        """The period label of one event time."""
        return self.period_label(int(self.period_codes(np.array([ts_us]))[0]))

    def _one(self, code: int, device_id: str) -> str:
        key = (code, device_id)
        p = self._cache.get(key)
        if p is None:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            p = self._cache[key] = self.pseudonym(device_id, self.period_label(code))
            self.hmacs += 1
        return p

    def apply(self, ids: list[str], ts_us: np.ndarray) -> list[str]:
        """The pseudonyms of ``ids`` at event times ``ts_us`` (same length)."""
        codes = self.period_codes(ts_us)
        if len(codes) and (codes == codes[0]).all():
            code = int(codes[0])
            mapping = {d: self._one(code, d) for d in set(ids)}
            return list(map(mapping.__getitem__, ids))
        return [self._one(c, d) for c, d in zip(codes.tolist(), ids)]
