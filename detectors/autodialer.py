"""``autodialer``: placeholder, being written."""

from __future__ import annotations

from typing import Any

from detectors.base import CustomerContext, Decision, Detector, DetectorParams
from tollguard.cdr import CallDetailRecord


class AutodialerParams(DetectorParams):
    """Thresholds of ``autodialer``."""


class AutodialerDetector(Detector):
    """Placeholder."""

    name = "autodialer"
    clause = "8.2"
    params_model = AutodialerParams

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        return []
