"""Privacy for mobile and personal sources (docs/privacy.md): data classes per source and topic,
keyed pseudonyms of device ids, dropped fields, coarsened positions, redacted quarantine, and
position-only readings. Applied right after decode, before validation, and only to the readings
of sources or topics whose class has a policy: every other source takes the path it always took."""

from urbanpulse.privacy.pseudonyms import Pseudonymiser, load_key
from urbanpulse.privacy.settings import ClassPolicy, PrivacySettings
from urbanpulse.privacy.stage import PrivacyStage, build_privacy_stage

__all__ = ["ClassPolicy", "PrivacySettings", "PrivacyStage", "Pseudonymiser", "build_privacy_stage", "load_key"]
