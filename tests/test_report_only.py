"""Report-only mode (rules ``mode: report_only``): a trial of a detector or a customer's rules.

The premium-destination episode of tests/test_authorize.py (acme dials twelve +979 numbers)
gives an alert then a suspension under enforce. In report-only mode, set on the detector,
on the customer, or in one customer's override of the detector, the same two events come out
at the same event times, both ``alert``, both marked ``report_only``, with ids of their own;
nothing is in force, so ``/v1/authorize`` allows acme's +979 calls.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_authorize import RULES_YAML, Worker, _states, premium_episode, run

from engine.core import Engine
from engine.enforcement import Authorizer, SuspensionIndex
from engine.registry import parse_rules
from engine.runner import Runner, event_bytes
from tollguard.errors import RulesError
from tollguard.events import Event

ACME_979 = {"customer": "acme", "caller": "+390212345600", "callee": "+979123456799", "did": "+390212345600"}

MODES = {
    "detector": RULES_YAML + "detectors:\n  premium_destination:\n    mode: report_only\n",
    "customer": RULES_YAML.replace("  londonco:", "    mode: report_only\n  londonco:"),
    "override": RULES_YAML.replace(
        "  londonco:", "    overrides:\n      premium_destination: {mode: report_only}\n  londonco:"),
}


def replay(rules_yaml: str) -> tuple[Engine, Runner, list[Event]]:
    engine = Engine(parse_rules(rules_yaml))
    runner = Runner(engine)
    events: list[Event] = []
    for cdr in premium_episode():
        events += runner.take_record(cdr, "test", None, "").events
    events += runner.flush().events
    return engine, runner, events


def brief(events: list[Event]) -> list[tuple[Any, ...]]:
    return [(str(e.type), e.detector, e.customer_id, f"{e.scope.kind}:{e.scope.value}", e.occurred_at.isoformat(),
             e.report_only) for e in events]


def test_enforce_gives_an_alert_then_a_suspension_without_the_mark() -> None:
    _, _, events = replay(RULES_YAML)
    assert brief(events) == [
        ("alert", "premium_destination", "acme", "destination_prefix:+979", "2026-11-30T09:02:20+00:00", False),
        ("suspension", "premium_destination", "acme", "destination_prefix:+979", "2026-11-30T09:09:20+00:00", False),
    ]
    assert all("report_only" not in json.loads(event_bytes(e)) for e in events)  # the JSON shape is unchanged


@pytest.mark.parametrize("where", sorted(MODES))
def test_report_only_marks_the_events_and_suspends_nothing(where: str, clean_env: None) -> None:
    _, _, enforced = replay(RULES_YAML)
    engine, runner, events = replay(MODES[where])
    assert brief(events) == [
        ("alert", "premium_destination", "acme", "destination_prefix:+979", "2026-11-30T09:02:20+00:00", True),
        ("alert", "premium_destination", "acme", "destination_prefix:+979", "2026-11-30T09:09:20+00:00", True),
    ]
    assert [json.loads(event_bytes(e))["report_only"] for e in events] == [True, True]
    assert [e.reason for e in events] == [e.reason for e in enforced]  # the decision itself is the same
    assert not {e.event_id for e in events} & {e.event_id for e in enforced}  # a later real suspension is new
    acme = runner.store.get("acme")
    assert acme is not None and engine.active_suspensions(acme) == []
    authorizer = Authorizer(engine.rules, lambda: [r for s in _states(runner) for r in engine.active_suspensions(s)])
    assert authorizer.authorize("acme", "+390212345600", "+979123456799").allow
    worker = Worker(engine.rules, runner, engine, {})

    async def ask() -> None:
        async with worker as client:
            r = await client.get("/v1/authorize", params=ACME_979)
            assert (r.status, await r.json()) == (200, {"allow": True})

    run(ask())


def test_a_report_only_row_never_refuses_a_call() -> None:
    row = {"customer_id": "acme", "event_id": "e1", "scope_kind": "account", "scope_value": "acme",
           "status": "active", "reason": "r", "report_only": True}
    index = SuspensionIndex(parse_rules(RULES_YAML), [row])
    assert index.authorize("acme", "+390212345600", "+390612345678").allow


def test_other_customers_keep_enforcing_when_one_is_on_trial() -> None:
    rules = parse_rules(MODES["customer"])
    assert rules.context("acme").params["spend"].mode == "report_only"
    assert rules.context("londonco").params["spend"].mode == "enforce"


def test_an_unknown_mode_is_refused_with_line_and_field() -> None:
    with pytest.raises(RulesError) as refused:
        parse_rules(RULES_YAML + "detectors:\n  autodialer:\n    mode: dry_run\n")
    assert refused.value.line == 13 and refused.value.field == "detectors.autodialer.mode"
    assert "report_only" in refused.value.message


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOLLGUARD_API_TOKEN", raising=False)
    monkeypatch.delenv("TOLLGUARD_WEB_BIND", raising=False)


def test_the_most_specific_mode_wins() -> None:
    rules = parse_rules(RULES_YAML.replace("  londonco:", "    mode: enforce\n  londonco:\n    mode: report_only\n"
                                          "    overrides:\n      spend: {mode: enforce}")
                        + "detectors:\n  premium_destination:\n    mode: report_only\n")
    acme, london = rules.context("acme").params, rules.context("londonco").params
    assert (acme["premium_destination"].mode, acme["spend"].mode) == ("enforce", "enforce")  # customer over detector
    assert (london["premium_destination"].mode, london["spend"].mode, london["bandwidth"].mode) == (
        "report_only", "enforce", "report_only")  # override over customer
    assert rules.context("other").params["premium_destination"].mode == "report_only"
