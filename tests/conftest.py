"""Shared fixtures: CDR factory, rules, engine, and where the real CDR samples live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kafka_fixtures import kafka_bootstrap  # noqa: F401  (Kafka broker fixture: tests/kafka_fixtures.py)

from engine.core import Engine
from engine.registry import Rules, parse_rules
from tollguard.testing import make_cdr

REPO = Path(__file__).resolve().parents[1]
#: Real CDR excerpts beside the repository (../shared/data/cdr-samples, or $TOLLGUARD_SAMPLES); tests skip when absent.
SAMPLES = Path(os.environ.get("TOLLGUARD_SAMPLES") or REPO.parent / "shared" / "data" / "cdr-samples")


@pytest.fixture
def cdr():
    """Factory: ``cdr(call_id="x", start_s=0, end_s=60, ...)`` → CallDetailRecord."""
    return make_cdr


@pytest.fixture
def rules() -> Rules:
    """Built-in default rules."""
    return Rules(version="test")


@pytest.fixture
def make_rules():
    """Factory: rules from YAML text."""
    return parse_rules


@pytest.fixture
def engine(rules: Rules) -> Engine:
    return Engine(rules)


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"real CDR samples not present ({SAMPLES.name} folder absent)")
    return SAMPLES
