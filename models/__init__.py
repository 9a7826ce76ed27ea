"""Anomaly model (clause 8.6): window features, the scoring detector, training and persistence.

``models.features`` and ``models.detector`` are plain Python (no scikit-learn import);
``models.model`` and ``models.train`` need the ``ml`` extra (scikit-learn, skops).
"""

from models.detector import AnomalyDetector, AnomalyParams
from models.features import FEATURE_NAMES, FeatureSettings, window_features

__all__ = ["FEATURE_NAMES", "AnomalyDetector", "AnomalyParams", "FeatureSettings", "window_features"]
