"""Shared fixtures: CDR factory, rules, engine, a small anomaly model, and where the real CDR samples live."""

from __future__ import annotations

import os
from datetime import UTC, datetime
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


@pytest.fixture(scope="session")
def small_anomaly_model(tmp_path_factory):
    """An AnomalyModel of 50 trees trained on 3 benign simulated days (Sat 2025-03-08 to Mon) of 4 customers.

    Cheap (about 2 s, once per session); ``cust-001`` of ``default_profiles(n, seed=0)`` has its baseline.
    """
    pytest.importorskip("sklearn")
    from streams.train import train
    from tollguard import simulate

    history = simulate.run_scenario(
        "benign", start=datetime(2025, 3, 8, tzinfo=UTC), minutes=3 * 1440, customers=4, seed=0
    )
    path = tmp_path_factory.mktemp("small-anomaly-model") / "history.jsonl"
    simulate.write(history.records(), "jsonl", path)
    rules = Rules(version="test", **simulate.customers_rules(history.profiles))
    model, _ = train([path], rules, n_estimators=50)
    return model


@pytest.fixture(autouse=True)
def _no_replay_repeats_an_event_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every in-process replay of the suite is checked: an event id is never emitted twice (issue 9)."""
    from streams.replay import Replay

    original = Replay._write  # noqa: SLF001  (wrapped, not changed: the check runs around it)

    def checked(self: Replay, outcome) -> None:  # type: ignore[no-untyped-def]
        seen = self.__dict__.setdefault("_test_event_ids", set())
        for event in outcome.events:
            assert event.event_id not in seen, f"event id {event.event_id} emitted twice ({event.reason})"
            seen.add(event.event_id)
        original(self, outcome)

    monkeypatch.setattr(Replay, "_write", checked)
