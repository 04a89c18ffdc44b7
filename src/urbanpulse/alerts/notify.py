"""Where committed alert events go: SSE subscribers (:class:`AlertHub`) and webhooks
(:class:`WebhookNotifier`). Both take events only after COMMIT and never block the caller."""

from urbanpulse.alerts.hub import AlertHub, Subscription
from urbanpulse.alerts.webhooks import WebhookNotifier

__all__ = ["AlertHub", "Subscription", "WebhookNotifier"]
