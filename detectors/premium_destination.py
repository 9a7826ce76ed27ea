"""``premium_destination``: placeholder, being written."""

from __future__ import annotations

from typing import Any

from detectors.base import CustomerContext, Decision, Detector, DetectorParams
from tollguard.cdr import CallDetailRecord


class PremiumDestinationParams(DetectorParams):
    """Thresholds of ``premium_destination``."""


class PremiumDestinationDetector(Detector):
    """Placeholder."""

    name = "premium_destination"
    clause = "8.2"
    params_model = PremiumDestinationParams

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        return []
