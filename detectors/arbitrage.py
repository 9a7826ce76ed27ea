"""``arbitrage``: placeholder, being written."""

from __future__ import annotations

from typing import Any

from detectors.base import CustomerContext, Decision, Detector, DetectorParams
from tollguard.cdr import CallDetailRecord


class ArbitrageParams(DetectorParams):
    """Thresholds of ``arbitrage``."""


class ArbitrageDetector(Detector):
    """Placeholder."""

    name = "arbitrage"
    clause = "8.2"
    params_model = ArbitrageParams

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        return []
