"""The Things Stack v3 webhook receiver for urbanpulse (entry point ``ttn_webhook``)."""

from urbanpulse_ttn_webhook.source import TtnWebhookSource, WebhookConfig

__all__ = ["TtnWebhookSource", "WebhookConfig"]
