"""The live operations page: its settings, the feed of committed readings it shows, and the
static files the service serves at ``/`` (see docs/live-page.md)."""
