"""Rule detectors: plain Python, no Faust or Kafka imports (DESIGN §2).

Every detector implements :class:`detectors.base.Detector`. The registry (which detectors
run, in which order) is assembled above this layer, in ``engine.registry``.
"""

from detectors.arbitrage import ArbitrageDetector, ArbitrageParams
from detectors.autodialer import AutodialerDetector, AutodialerParams
from detectors.bandwidth import BandwidthDetector, BandwidthParams
from detectors.base import CustomerContext, Decision, Detector, DetectorParams
from detectors.did_concurrency import DidConcurrencyDetector, DidConcurrencyParams
from detectors.premium_destination import PremiumDestinationDetector, PremiumDestinationParams

__all__ = [
    "ArbitrageDetector",
    "ArbitrageParams",
    "AutodialerDetector",
    "AutodialerParams",
    "BandwidthDetector",
    "BandwidthParams",
    "CustomerContext",
    "Decision",
    "Detector",
    "DetectorParams",
    "DidConcurrencyDetector",
    "DidConcurrencyParams",
    "PremiumDestinationDetector",
    "PremiumDestinationParams",
]
