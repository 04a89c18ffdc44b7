"""The alert lifecycle: open -> acknowledged -> resolved, with suppression and notification.

``AlertManager`` (pure memory logic) decides, ``AlertStore`` persists inside the batch
transaction and serves the API, ``AlertHub`` fans events out to SSE clients and
``WebhookNotifier`` POSTs them; ``AlertService`` holds the four. See docs/alerts.md.
"""

from typing import TYPE_CHECKING

from urbanpulse.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from urbanpulse.alerts.errors import AlertError, AlertNotFound, InvalidQuery, InvalidTransition
    from urbanpulse.alerts.hub import AlertHub
    from urbanpulse.alerts.inputs import ClosedWindowsRef, Detections, SilencesRef
    from urbanpulse.alerts.lifecycle import AlertManager
    from urbanpulse.alerts.model import AlertChanges, AlertEvent
    from urbanpulse.alerts.service import AlertService
    from urbanpulse.alerts.settings import AlertSettings
    from urbanpulse.alerts.store import AlertStore
    from urbanpulse.alerts.webhooks import WebhookNotifier

#: name -> module: imported on first use (PEP 562), so importing one submodule (a settings
#: model the configuration needs) does not import the whole package at start-up
_LAZY = {
    "AlertChanges": "urbanpulse.alerts.model",
    "AlertError": "urbanpulse.alerts.errors",
    "AlertEvent": "urbanpulse.alerts.model",
    "AlertHub": "urbanpulse.alerts.hub",
    "AlertManager": "urbanpulse.alerts.lifecycle",
    "AlertNotFound": "urbanpulse.alerts.errors",
    "AlertService": "urbanpulse.alerts.service",
    "AlertSettings": "urbanpulse.alerts.settings",
    "AlertStore": "urbanpulse.alerts.store",
    "ClosedWindowsRef": "urbanpulse.alerts.inputs",
    "Detections": "urbanpulse.alerts.inputs",
    "InvalidQuery": "urbanpulse.alerts.errors",
    "InvalidTransition": "urbanpulse.alerts.errors",
    "SilencesRef": "urbanpulse.alerts.inputs",
    "WebhookNotifier": "urbanpulse.alerts.webhooks",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "AlertChanges", "AlertError", "AlertEvent", "AlertHub", "AlertManager", "AlertNotFound", "AlertService",
    "AlertSettings", "AlertStore", "ClosedWindowsRef", "Detections", "InvalidQuery", "InvalidTransition",
    "SilencesRef", "WebhookNotifier",
]
