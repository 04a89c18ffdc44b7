"""Exports of history queries as CSV, NDJSON and Parquet, streamed with constant memory.

``source`` produces the rows of a query as Arrow record batches (binary COPY for readings, a
server-side cursor for buckets), ``writers`` turns batches into file bytes chunk by chunk, and
``stream`` ties both together for the HTTP route and ``urbanpulse export``.
"""
