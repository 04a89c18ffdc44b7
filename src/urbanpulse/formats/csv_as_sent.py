"""A CSV row as the bytes it arrived as, for its quarantine row (csv46).

The CSV format quarantined a rejected row as its cells joined again with the delimiter, which lost
what the sender wrote: quoting (``"21,5"`` became ``21,5``, a row of one cell more), a doubled
quote, spaces inside quotes and a ``\\r\\n`` inside a quoted field. Now the row is its bytes in the
body: its line, or every line a quoted field holding a line break spans, without the line break that
ends the row (the ``\\r\\n``, ``\\n`` or ``\\r`` between rows is layout, as the ``\\n`` between line
protocol lines is). A UTF-8 byte order mark at the start of the body is kept with the row it opens.

Rows are located only when one of a message's rows is quarantined: the body is parsed again,
counting the lines each record spans, once per message however many of its rows are rejected.
The good rows' path does no work for this (it used to join and encode every row).
"""

from __future__ import annotations

import codecs
import csv
import io

_ROW_END = ("\r\n", "\n", "\r")


class RowOfMessage:
    """Marker kept for a reading whose quarantine row is its CSV row: the row is found from the
    reading's message and item (the record's index in the body) only if it is quarantined."""

    __slots__ = ()


#: the one marker (a reading's ``raw``): one shared object, nothing built per row
ROW_OF_MESSAGE = RowOfMessage()


class CsvBodyAsSent:
    """One CSV message's records as the bytes they arrived as, located once when first asked."""

    __slots__ = ("payload", "_delimiter", "_rows")

    def __init__(self, payload: bytes, delimiter: str) -> None:
        self.payload = payload
        self._delimiter = delimiter
        self._rows: list[bytes] | None = None

    def row(self, record: int) -> bytes:
        """The bytes of record ``record`` (0 is the body's first, a header row if any, as ``csv.reader``
        counts them, blank lines included); the whole body should it not be found (a body that
        ``csv.reader`` refuses never reaches here: it is rejected whole)."""
        if self._rows is None:
            self._rows = self._locate()
        return self._rows[record] if 0 <= record < len(self._rows) else self.payload

    def _locate(self) -> list[bytes]:
        payload = self.payload
        bom = payload.startswith(codecs.BOM_UTF8)
        # the same text and line splitting the format parses (decode_message), bad bytes kept as surrogates
        text = payload.decode("utf-8-sig", "surrogateescape")
        lines = io.StringIO(text, newline="").readlines()
        reader = csv.reader(iter(lines), delimiter=self._delimiter, strict=True)
        rows: list[bytes] = []
        start = 0
        try:
            for _ in reader:
                end = reader.line_num
                row = "".join(lines[start:end])
                for ending in _ROW_END:
                    if row.endswith(ending):
                        row = row[: -len(ending)]
                        break
                data = row.encode("utf-8", "surrogateescape")
                rows.append(codecs.BOM_UTF8 + data if bom and start == 0 else data)
                start = end
        except csv.Error:  # not reached: the format refused such a body before any row was quarantined
            pass
        return rows
