"""The alert lifecycle: open -> acknowledged -> resolved, with suppression and notification.

``AlertManager`` (pure memory logic) decides, ``AlertStore`` persists inside the batch
transaction and serves the API, ``AlertHub`` fans events out to SSE clients and
``WebhookNotifier`` POSTs them; ``AlertService`` holds the four. See docs/alerts.md.
"""

from urbanpulse.alerts.errors import AlertError, AlertNotFound, InvalidQuery, InvalidTransition
from urbanpulse.alerts.hub import AlertHub
from urbanpulse.alerts.inputs import ClosedWindowsRef, Detections, SilencesRef
from urbanpulse.alerts.lifecycle import AlertManager
from urbanpulse.alerts.model import AlertChanges, AlertEvent
from urbanpulse.alerts.service import AlertService
from urbanpulse.alerts.settings import AlertSettings
from urbanpulse.alerts.store import AlertStore
from urbanpulse.alerts.webhooks import WebhookNotifier

__all__ = [
    "AlertChanges", "AlertError", "AlertEvent", "AlertHub", "AlertManager", "AlertNotFound", "AlertService",
    "AlertSettings", "AlertStore", "ClosedWindowsRef", "Detections", "InvalidQuery", "InvalidTransition",
    "SilencesRef", "WebhookNotifier",
]
