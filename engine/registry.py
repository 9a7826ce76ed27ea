"""The detector registry and the rules schema composed from it (the top of the detection layers).

The detectors (``detectors/``, ``models/``) know nothing of each other or of the
registry; the domain layer's rules schema (:mod:`tollguard.rules`) is generic. This module
puts them together: :data:`ALL_DETECTORS` in run order, the :class:`Rules` class whose
``detectors`` section holds each detector's thresholds, and the loaders bound to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detectors.arbitrage import ArbitrageDetector
from detectors.autodialer import AutodialerDetector
from detectors.bandwidth import BandwidthDetector
from detectors.base import Detector
from detectors.did_concurrency import DidConcurrencyDetector
from detectors.premium_destination import PremiumDestinationDetector
from detectors.spend import SpendDetector
from detectors.traffic import TrafficDetector
from models.detector import AnomalyDetector
from tollguard import rules as _rules

#: Every detector, in the order the engine runs them (the order of their events).
ALL_DETECTORS: tuple[type[Detector], ...] = (
    PremiumDestinationDetector,
    ArbitrageDetector,
    AutodialerDetector,
    DidConcurrencyDetector,
    BandwidthDetector,
    SpendDetector,
    AnomalyDetector,
    TrafficDetector,
)

#: The rules file's schema: the generic sections plus one thresholds section per detector.
Rules: type[_rules.Rules] = _rules.rules_schema(ALL_DETECTORS)


def load_rules(path: str | Path | None = None, ingest: dict[str, Any] | None = None) -> _rules.Rules:
    """Load and validate a rules file against :data:`Rules` (see :func:`tollguard.rules.load_rules`).

    ``ingest`` overrides keys of its ``ingest`` section (``--timezone``, ``--country``).

    Raises
    ------
    tollguard.errors.RulesError
        The file is missing, unreadable or invalid (with line and field).
    """
    return _rules.load_rules(path, Rules, ingest)


def parse_rules(text: str, path: str = "<rules>") -> _rules.Rules:
    """Validate rules YAML text against :data:`Rules` (see :func:`tollguard.rules.parse_rules`).

    Raises
    ------
    tollguard.errors.RulesError
        With the line and dotted field of the first fault.
    """
    return _rules.parse_rules(text, path, Rules)


def build_detectors(model: Any = None) -> list[Detector]:
    """One instance of every registered detector; ``model`` goes to those that use a trained model."""
    return [cls(model) if getattr(cls, "uses_model", False) else cls() for cls in ALL_DETECTORS]  # type: ignore[call-arg]
