"""``bandwidth``: placeholder, being written."""

from __future__ import annotations

from typing import Any

from detectors.base import CustomerContext, Decision, Detector, DetectorParams
from tollguard.cdr import CallDetailRecord


class BandwidthParams(DetectorParams):
    """Thresholds of ``bandwidth``."""


class BandwidthDetector(Detector):
    """Placeholder."""

    name = "bandwidth"
    clause = "3.1"
    params_model = BandwidthParams

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        return []
