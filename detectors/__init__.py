"""Rule detectors: plain Python, no Faust or Kafka imports (DESIGN §2).

Every detector implements :class:`detectors.base.Detector`; ``ALL_DETECTORS`` is the
registry the engine and the rules schema are built from.
"""

from detectors.arbitrage import ArbitrageDetector, ArbitrageParams
from detectors.autodialer import AutodialerDetector, AutodialerParams
from detectors.bandwidth import BandwidthDetector, BandwidthParams
from detectors.base import CustomerContext, Decision, Detector, DetectorParams
from detectors.did_concurrency import DidConcurrencyDetector, DidConcurrencyParams
from detectors.premium_destination import PremiumDestinationDetector, PremiumDestinationParams
from models.detector import AnomalyDetector, AnomalyParams  # the trained model's detector (clause 8.6)

#: Every rule detector, in the order the engine runs them (the order of their events).
ALL_DETECTORS: tuple[type[Detector], ...] = (
    PremiumDestinationDetector,
    ArbitrageDetector,
    AutodialerDetector,
    DidConcurrencyDetector,
    BandwidthDetector,
    AnomalyDetector,
)

__all__ = [
    "ALL_DETECTORS",
    "AnomalyDetector",
    "AnomalyParams",
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
