"""Privacy for mobile and personal sources (docs/privacy.md): data classes per source and topic,
keyed pseudonyms of device ids, dropped fields, coarsened positions, redacted quarantine, and
position-only readings. Applied right after decode, before validation, and only to the readings
of sources or topics whose class has a policy: every other source takes the path it always took."""

from typing import TYPE_CHECKING

from urbanpulse.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from urbanpulse.privacy.pseudonyms import Pseudonymiser, load_key
    from urbanpulse.privacy.settings import ClassPolicy, PrivacySettings
    from urbanpulse.privacy.stage import PrivacyStage, build_privacy_stage

#: name -> module: imported on first use (PEP 562), so importing one submodule (a settings
#: model the configuration needs) does not import the whole package at start-up
_LAZY = {
    "ClassPolicy": "urbanpulse.privacy.settings",
    "PrivacySettings": "urbanpulse.privacy.settings",
    "PrivacyStage": "urbanpulse.privacy.stage",
    "Pseudonymiser": "urbanpulse.privacy.pseudonyms",
    "build_privacy_stage": "urbanpulse.privacy.stage",
    "load_key": "urbanpulse.privacy.pseudonyms",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["ClassPolicy", "PrivacySettings", "PrivacyStage", "Pseudonymiser", "build_privacy_stage", "load_key"]
