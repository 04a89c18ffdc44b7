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

    __slots__ = ("payload", "_delimiter", "_lines", "_ends")

    def __init__(self, payload: bytes, delimiter: str) -> None:
        self.payload = payload
        self._delimiter = delimiter
        self._lines: list[str] = []
        self._ends: list[int] | None = None

    def row(self, record: int) -> bytes:
        """The bytes of record ``record`` (0 is the body's first, a header row if any, as ``csv.reader``
        counts them, blank lines included); the whole body should it not be found (a body that
        ``csv.reader`` refuses never reaches here: it is rejected whole)."""
        if self._ends is None:
            self._ends = self._locate()
        ends = self._ends
        if not 0 <= record < len(ends):
            return self.payload
        start = ends[record - 1] if record else 0
        row = "".join(self._lines[start:ends[record]])
        for ending in _ROW_END:
            if row.endswith(ending):
                row = row[: -len(ending)]
                break
        data = row.encode("utf-8", "surrogateescape")
        return codecs.BOM_UTF8 + data if start == 0 and self.payload.startswith(codecs.BOM_UTF8) else data

    def _locate(self) -> list[int]:
        """The line after each record's last (``csv.reader``'s ``line_num``), over the text's lines."""
        # the same text and line splitting the format parses (decode_message), bad bytes kept as surrogates
        text = self.payload.decode("utf-8-sig", "surrogateescape")
        lines = self._lines = io.StringIO(text, newline="").readlines()
        reader = csv.reader(lines, delimiter=self._delimiter, strict=True)
        ends: list[int] = []
        try:
            for _ in reader:
                ends.append(reader.line_num)
        except csv.Error:  # not reached: the format refused such a body before any row was quarantined
            pass
        return ends
