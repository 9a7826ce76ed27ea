"""Engine: event-time ordering within lateness, late / duplicate / legs, one event per episode."""

from __future__ import annotations

import json

from detectors.autodialer import AutodialerParams
from detectors.base import Decision, Detector
from detectors.did_concurrency import DidConcurrencyDetector
from engine.core import CustomerState, Engine
from engine.registry import Rules
from tollguard.cdr import Disposition
from tollguard.events import EventType, ScopeKind
from tollguard.testing import make_cdr

DID = "+390298765432"


class OrderProbe(Detector):
    """Records the order CDRs reach detectors; suspends a CLI on calls to +979."""

    name = "autodialer"
    clause = "8.2"
    params_model = AutodialerParams

    def initial_state(self):
        return {"seen": []}

    def update(self, state, cdr, ctx):
        state["seen"].append(cdr.call_id)
        if cdr.callee.startswith("+979"):
            t = cdr.end.timestamp()
            return [Decision(EventType.SUSPENSION, "critical", ScopeKind.CLI, cdr.caller, "ep1", t,
                             "calls to +979", {"call_id": cdr.call_id})]
        return []


def feed(engine, cdrs, customer="c1"):
    state = engine.new_state(customer)
    results = [engine.ingest(state, c) for c in cdrs]
    events = [e for r in results for e in r.events] + engine.flush(state)
    return state, results, events


def test_arrival_disorder_within_lateness_gives_event_time_order():
    rules = Rules(version="t")
    cdrs = [make_cdr(call_id=f"k{i:02d}", start_s=i * 10, end_s=i * 10 + 5) for i in range(40)]
    # disorder within the lateness: neighbours swapped
    near = cdrs[:]
    for i in range(0, 38, 2):
        near[i], near[i + 1] = near[i + 1], near[i]
    probe = OrderProbe()
    state, results, _ = feed(Engine(rules, [probe]), near)
    assert [r.status for r in results] == ["accepted"] * 40
    assert state.detectors["autodialer"]["seen"] == [c.call_id for c in cdrs]


def test_late_cdr_is_refused_with_reason():
    rules = Rules(version="t")
    eng = Engine(rules, [OrderProbe()])
    state = eng.new_state("c1")
    assert eng.ingest(state, make_cdr(call_id="new", start_s=1000, end_s=1000)).status == "accepted"
    late = eng.ingest(state, make_cdr(call_id="old", start_s=0, end_s=699))
    assert late.status == "late"
    assert "301 s before the newest CDR" in late.reason and "allowed lateness 300 s" in late.reason
    assert eng.ingest(state, make_cdr(call_id="edge", start_s=0, end_s=700)).status == "accepted"


def test_duplicate_delivery_counts_once_and_legs_merge():
    rules = Rules(version="t")
    probe = OrderProbe()
    eng = Engine(rules, [probe])
    a1 = make_cdr(call_id="L1", leg_id="L1", start_s=0, end_s=30, disposition=Disposition.NO_ANSWER)
    a2 = make_cdr(call_id="L1", leg_id="L1.2", start_s=2, end_s=90, answer_s=5)
    state, results, _ = feed(eng, [a1, a1, a2, a2])
    assert [r.status for r in results] == ["accepted", "duplicate", "merged", "duplicate"]
    assert state.detectors["autodialer"]["seen"] == ["L1"]


def test_one_episode_gives_one_suspension_with_deterministic_id():
    rules = Rules(version="t")
    cdrs = [make_cdr(call_id=f"p{i}", caller="+390212345678", callee="+979123456789", start_s=i * 60,
                     end_s=i * 60 + 30) for i in range(5)]
    _, _, ev1 = feed(Engine(rules, [OrderProbe()]), cdrs)
    _, _, ev2 = feed(Engine(rules, [OrderProbe()]), cdrs)
    assert len(ev1) == 1 and ev1[0].type is EventType.SUSPENSION
    assert ev1[0].event_id == ev2[0].event_id
    assert ev1[0].cos == "critical" and ev1[0].clause == "8.2"
    assert ev1[0].scope.kind is ScopeKind.CLI and ev1[0].scope.value == "+390212345678"
    assert ev1[0].occurred_at.timestamp() == cdrs[0].end.timestamp()


def test_capacity_event_through_engine_and_state_json_round_trip():
    rules = Rules(version="t")
    eng = Engine(rules, [DidConcurrencyDetector()])
    cdrs = [make_cdr(call_id=f"c{i}", did=DID, start_s=i, end_s=300 + i) for i in range(21)]
    state = eng.new_state("c1")
    for c in cdrs[:10]:
        eng.ingest(state, c)
    state = CustomerState.from_json_dict(json.loads(json.dumps(state.to_json_dict())))
    for c in cdrs[10:]:
        assert eng.ingest(state, c).events == []
    events = eng.flush(state)
    assert [(e.type, e.observed_peak, e.proposed_capacity, e.cos) for e in events] == [
        (EventType.CAPACITY_INCREASE, 21, 30, "normal")
    ]
    assert events[0].occurred_at == cdrs[-1].end
    assert events[0].rules_version == "t"


def _suspended(engine_, cdrs):
    state = engine_.new_state("c1")
    events = [e for c in cdrs for e in engine_.ingest(state, c).events] + engine_.flush(state)
    return state, events


def _premium_calls(prefix="p", start_s=0, n=5):
    return [make_cdr(call_id=f"{prefix}{i}", caller="+390212345678", callee="+979123456789",
                     start_s=start_s + i * 60, end_s=start_s + i * 60 + 30) for i in range(n)]


def test_cleared_verdict_reactivates_and_resets_the_scope():
    from datetime import timedelta

    import pytest

    from tollguard.errors import VerdictError
    from tollguard.events import Verdict
    from tollguard.testing import BASE_TIME

    eng = Engine(Rules(version="t"), [OrderProbe()])
    state, events = _suspended(eng, _premium_calls())
    (susp,) = events
    assert [o["event_id"] for o in eng.active_suspensions(state)] == [susp.event_id]
    assert state.open[next(iter(state.open))]["updates"] == 4  # more evidence updated it, no new suspension
    verdict = Verdict(suspension_event_id=susp.event_id, verdict="cleared", by="noc-anna",
                      at=BASE_TIME + timedelta(hours=1), note="customer confirmed the calls")
    (react,) = eng.apply_verdict(state, verdict)
    assert react.type is EventType.REACTIVATION and react.suspension_event_id == susp.event_id
    assert react.scope == susp.scope and react.clause == "8.6" and react.cos == "critical"
    assert react.evidence["by"] == "noc-anna" and react.evidence["suspension_evidence"] == {"call_id": "p4"}
    assert eng.active_suspensions(state) == []
    with pytest.raises(VerdictError, match="already closed: cleared by noc-anna"):
        eng.apply_verdict(state, verdict)
    with pytest.raises(VerdictError, match="unknown suspension nope"):
        eng.apply_verdict(state, verdict.model_copy(update={"suspension_event_id": "nope"}))


def test_confirmed_verdict_recommends_termination():
    from datetime import timedelta

    import pytest

    from tollguard.errors import VerdictError
    from tollguard.events import Verdict
    from tollguard.testing import BASE_TIME

    eng = Engine(Rules(version="t"), [OrderProbe()])
    state, (susp,) = _suspended(eng, _premium_calls())
    with pytest.raises(VerdictError, match="is before suspension"):
        eng.apply_verdict(state, Verdict(suspension_event_id=susp.event_id, verdict="confirmed",
                                         by="fraud-luca", at=BASE_TIME))
    (term,) = eng.apply_verdict(state, Verdict(suspension_event_id=susp.event_id, verdict="confirmed",
                                               by="fraud-luca", at=BASE_TIME + timedelta(hours=1)))
    assert term.type is EventType.SUSPENSION and term.termination_recommended is True
    assert term.clause == "13.1" and term.suspension_event_id == susp.event_id
    assert term.event_id != susp.event_id
    assert [o["status"] for o in eng.active_suspensions(state)] == ["confirmed"]
    # still suspended: new evidence does not open a new suspension
    more = [e for c in _premium_calls("q", 7200) for e in eng.ingest(state, c).events] + eng.flush(state)
    assert more == []


def test_widen_to_account_only_where_rules_say_so():
    rules = Rules.model_validate({"engine": {"widen_to_account_after": 2}})
    eng = Engine(rules, [OrderProbe()])
    cdrs = _premium_calls() + [
        make_cdr(call_id=f"z{i}", caller="+390212345699", callee="+979123456789", start_s=400 + i, end_s=430 + i)
        for i in range(2)
    ]
    _, events = _suspended(eng, sorted(cdrs, key=lambda c: c.end))
    assert [(e.scope.kind, e.scope.value) for e in events] == [
        (ScopeKind.CLI, "+390212345678"), (ScopeKind.CLI, "+390212345699"), (ScopeKind.ACCOUNT, "c1")]
    _, narrow = _suspended(Engine(Rules(), [OrderProbe()]), sorted(cdrs, key=lambda c: c.end))
    assert [e.scope.kind for e in narrow] == [ScopeKind.CLI, ScopeKind.CLI]


class AlertProbe(OrderProbe):
    """Warns on every call to +979 (an alert each time the evidence grows)."""

    def update(self, state, cdr, ctx):
        return [Decision(EventType.ALERT, "warning", ScopeKind.CLI, cdr.caller, f"ep{int(cdr.end.timestamp())}",
                         cdr.end.timestamp(), "warn", {})]


def test_alert_expiry_per_detector():
    calls = [make_cdr(call_id=f"a{i}", caller="+390212345678", start_s=t, end_s=t + 10)
             for i, t in enumerate([0, 1000, 5000, 9000])]
    _, default = _suspended(Engine(Rules(), [AlertProbe()]), calls)  # gap 3600 s: 0,1000 one; 5000; 9000
    assert len(default) == 3
    short = Rules.model_validate({"engine": {"alert_expiry_s": {"autodialer": 500}}})
    _, expiring = _suspended(Engine(short, [AlertProbe()]), calls)
    assert len(expiring) == 4


class RecurringAlert(Detector):
    """Warns on every CDR with the same episode key: the shape of a window that still holds old evidence."""

    name = "premium_destination"
    clause = "8.2"
    params_model = AutodialerParams  # any thresholds model with a window_s

    def initial_state(self):
        return {}

    def update(self, state, cdr, ctx):
        return [Decision(EventType.ALERT, "warning", ScopeKind.CLI, "+390611111111", "ep-first", cdr.end.timestamp(),
                         "still in the window", {})]


def test_an_event_id_is_never_emitted_twice_whatever_the_expiry():
    """An alert that expired while its detector still reports the same episode is not emitted again."""
    from engine.registry import parse_rules

    rules = parse_rules("engine:\n  episode_gap_s: 60\n")
    cdrs = [make_cdr(call_id=f"r{i}", start_s=i * 600, end_s=i * 600 + 30) for i in range(12)]  # 2 h, every 10 min
    _, _, events = feed(Engine(rules, [RecurringAlert()]), cdrs)
    assert [e.type for e in events] == [EventType.ALERT]  # once, not once per expiry


def test_the_alert_expiry_is_never_shorter_than_the_detectors_window():
    rules = Rules(version="t")
    engine = Engine(rules)
    ctx = engine.context("c1")
    window_s = ctx.params["premium_destination"].window_s
    assert engine.alert_expiry_s(ctx, "premium_destination") == max(window_s, rules.engine.episode_gap_s)
    from engine.registry import parse_rules

    wide = parse_rules("detectors:\n  premium_destination:\n    window_s: 7200\n")
    assert Engine(wide).alert_expiry_s(Engine(wide).context("c1"), "premium_destination") == 7200


def test_a_replay_with_windows_longer_than_the_episode_gap_repeats_no_event_id(tmp_path):
    """The case found on main: premium_destination.window_s 7200 with the default episode gap (3600)."""
    import io

    from engine.registry import parse_rules
    from streams.replay import replay_files
    from tollguard import simulate

    day = tmp_path / "day.jsonl"
    simulate.write(simulate.run_scenario("all", customers=10, seed=1).records(), "jsonl", day)
    for text in ("detectors:\n  premium_destination:\n    window_s: 7200\n",
                 "engine:\n  episode_gap_s: 300\n", ""):
        out = io.StringIO()
        replay_files([day], parse_rules(text), out, io.StringIO())
        ids = [json.loads(line)["event_id"] for line in out.getvalue().splitlines()]
        assert len(ids) >= 12 and len(ids) == len(set(ids)), text


def test_the_suites_guard_refuses_a_repeated_event_id():
    """conftest wraps every Replay's output: the same event id twice fails the test that replays."""
    import io

    import pytest

    from engine.runner import Outcome
    from streams.replay import Replay

    rules = Rules(version="t")
    _, _, events = feed(Engine(rules, [OrderProbe()]), [make_cdr(call_id="x", callee="+979123456", caller="+3906")])
    assert len(events) == 1
    run = Replay(rules, io.StringIO(), io.StringIO())
    run._write(Outcome(events=events))  # noqa: SLF001 (the writer the guard wraps, fed directly)
    with pytest.raises(AssertionError, match="emitted twice"):
        run._write(Outcome(events=events))  # noqa: SLF001
