"""Sensor.Community push receiver for urbanpulse (entry point ``sensor_community_push``)."""

from urbanpulse_sensor_community.source import PushConfig, SensorCommunityPushSource

__all__ = ["PushConfig", "SensorCommunityPushSource"]
