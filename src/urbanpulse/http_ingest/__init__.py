"""HTTP ingest: ``POST /ingest`` and ``POST /ingest/{format}`` into the same pipeline as MQTT and Kafka.

A request's readings are submitted as messages of the source ``http``; the answer is sent from
the pipeline's acknowledgement, i.e. only after the batch holding them is committed (readings
and quarantine rows alike). The route is :mod:`urbanpulse.api.routes.ingest`; this package
holds what it needs: reading the body (:mod:`.body`), choosing the format per request
(:mod:`.formats`) and waiting for durability (:mod:`.submit`).
"""

from urbanpulse.http_ingest.formats import HTTP_SOURCE

__all__ = ["HTTP_SOURCE"]
