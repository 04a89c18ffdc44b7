"""urbanpulse's conformance kit for format and source plugins (see docs/connectors.md).

Third-party plugins check themselves against the same contract the built-ins pass::

    pytest_plugins = ["urbanpulse.testing.plugin"]

    def test_my_format(format_conformance):
        format_conformance(MyFormat(), valid=[open("tests/sample.json", "rb").read()])
"""

from urbanpulse.testing.kit import FormatReport, RecordingSink, Sink, check_format, check_source, malformed_corpus

__all__ = ["FormatReport", "RecordingSink", "Sink", "check_format", "check_source", "malformed_corpus"]
