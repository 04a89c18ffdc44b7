"""urbanpulse's conformance kit for format and source plugins (see docs/connectors.md).

Third-party plugins check themselves against the same contract the built-ins pass:
``from urbanpulse.testing import check_format`` (see :mod:`urbanpulse.testing.kit`).
"""
