"""History queries over stored readings and rollups (HTTP ``/readings``, exports, the CLI).

``spec`` parses what is asked, ``buckets`` knows where buckets start in a time zone, ``plan``
picks the table (rollups when they answer exactly, raw readings otherwise) and writes the SQL,
``run`` executes pages and streams, ``fill`` fills empty buckets, ``cursor`` makes the keyset
cursors.
"""
