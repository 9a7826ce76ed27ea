"""IRSF judged at call setup (issue 10): calls up at once to new high-cost destinations, with call events only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from engine.core import Engine
from engine.registry import parse_rules
from engine.runner import Runner
from tollguard.calls import CallEvent
from tollguard.cdr import CallDetailRecord
from tollguard.events import Event

RULES = parse_rules('customers:\n  acme:\n    country: IT\n    dids:\n      "+390212345600": {}\n')
DID = "+390212345600"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DAY = 25 * 3600.0  # past the high-cost check's 24 h cold start


def _start(i: int, callee: str, at_s: float) -> CallEvent:
    return CallEvent(call_id=f"x{i}", customer_id="acme", direction="outbound", caller=DID, callee=callee, did=DID,
                     event="start", at=T0 + timedelta(seconds=at_s))


def _cdr(call_id: str, callee: str, start_s: float, talk_s: float) -> CallDetailRecord:
    return CallDetailRecord(
        call_id=call_id, customer_id="acme", direction="outbound", caller=DID, callee=callee, did=DID,
        start=T0 + timedelta(seconds=start_s), answer=T0 + timedelta(seconds=start_s + 5),
        end=T0 + timedelta(seconds=start_s + 5 + talk_s), duration_s=5 + talk_s, billsec_s=talk_s,
        disposition="ANSWERED", hangup_cause=16)


def _run(history: list[CallDetailRecord], starts: list[tuple[str, float]]) -> list[Event]:
    """Feed ``history`` CDRs, then one start event per ``(callee, at_s)``; the events emitted."""
    runner = Runner(Engine(RULES))
    out: list[Event] = []
    for n, cdr in enumerate(history):
        out += runner.take_record(cdr, "cdrs", n, "").events
    for i, (callee, at_s) in enumerate(starts):
        out += runner.take_call_event(_start(i, callee, at_s), "events", i).events
    return out


def _brief(events: list[Event]) -> list[tuple[Any, ...]]:
    return [(str(e.type), str(e.scope.kind), e.scope.value, e.occurred_at.isoformat(), e.evidence.get("rule"),
             e.evidence.get("calls_up"), e.evidence.get("listed"), e.evidence.get("unlisted")) for e in events]


def _home(at_s: float) -> CallDetailRecord:
    return _cdr("home", "+390612345678", at_s, 60)


def test_three_calls_up_to_a_new_listed_destination_suspend_at_the_third_start() -> None:
    starts = [(f"+23999012{30 + i}", DAY + 20 * i) for i in range(3)]
    assert _brief(_run([_home(0)], starts)) == [
        ("suspension", "outbound_international", "acme", (T0 + timedelta(seconds=DAY + 40.001)).isoformat(),
         "call_setup", 3, 3, 0)]
    assert _run([_home(0)], starts[:2]) == []  # two lines: left to the minutes and cost check


def test_the_same_calls_as_cdrs_only_give_no_setup_decision() -> None:
    cdrs = [_home(0)] + [_cdr(f"x{i}", f"+23999012{30 + i}", DAY + 20 * i, 60) for i in range(3)]
    runner = Runner(Engine(RULES))
    events = [e for n, cdr in enumerate(cdrs) for e in runner.take_record(cdr, "cdrs", n, "").events]
    events += runner.flush().events
    assert events == []


def test_a_destination_the_customer_already_calls_does_not_count() -> None:
    known = _cdr("before", "+2399901299", 3600, 300)  # answered a day before: +239 is known by then
    starts = [(f"+23999012{30 + i}", DAY + 20 * i) for i in range(4)]
    assert _run([_home(0), known], starts) == []


def test_unlisted_new_destinations_need_six_lines_and_never_count_in_the_cold_start() -> None:
    tunisia = [(f"+2167123456{i}", DAY + 10 * i) for i in range(6)]
    assert _brief(_run([_home(0)], tunisia)) == [
        ("suspension", "outbound_international", "acme", (T0 + timedelta(seconds=DAY + 50.001)).isoformat(),
         "call_setup", 6, 0, 6)]
    assert _run([_home(0)], tunisia[:5]) == []
    cold = [(number, at_s - DAY + 3600) for number, at_s in tunisia]  # the customer's first hours
    assert _run([_home(0)], cold) == []


def test_a_mix_counts_by_shares_and_emergency_or_national_calls_never() -> None:
    mix = [("+2399901230", DAY), ("+2399901231", DAY + 5)] + [(f"+2167123456{i}", DAY + 10 + i) for i in range(2)]
    # 2/3 + 2/6 = 1: suspended at the fourth start
    assert [b[5:] for b in _brief(_run([_home(0)], mix))] == [(4, 2, 2)]
    national = [("112", DAY), ("+390612345670", DAY + 1), ("+390612345671", DAY + 2), ("+2399901230", DAY + 3)]
    assert _run([_home(0)], national) == []


def test_a_few_new_destinations_among_many_usual_ones_are_not_an_attack() -> None:
    usual = ["+33123456789", "+4930123456", "+442079460000", "+34912345678"]
    history = [_home(0)] + [_cdr(f"h{i}", number, 3600 + 600 * i, 120) for i, number in enumerate(usual)]
    firm = [(number, DAY + i) for i, number in enumerate(usual)] + [(f"+23999012{30 + i}", DAY + 10 + i)
                                                                    for i in range(3)]
    assert _run(history, firm) == []  # 3 new of 7 international calls up: under half
    # the same three lines with only one usual call up: 3 of 4, suspended
    assert [b[5:] for b in _brief(_run(history, firm[3:]))] == [(3, 3, 0)]
