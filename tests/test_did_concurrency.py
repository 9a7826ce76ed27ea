"""did_concurrency: exact peak per DID, capacity_increase fields, levels, never a suspension."""

from __future__ import annotations

from datetime import timedelta

import pytest

from detectors.base import CustomerContext
from detectors.concurrency import add_call, peak_of
from detectors.did_concurrency import DidConcurrencyDetector, DidConcurrencyParams
from tollguard.cdr import Direction, Disposition
from tollguard.events import EventType, ScopeKind
from tollguard.testing import BASE_TIME, make_cdr

DID = "+390298765432"


def ctx(**kw) -> CustomerContext:
    params = DidConcurrencyParams(**kw.pop("params", {}))
    return CustomerContext("c1", params={"did_concurrency": params}, **kw)


def overlapping(n: int, did: str = DID, start_s: float = 0, length_s: float = 300, prefix: str = "c"):
    """n calls that all overlap at start_s + length_s - 1 (staggered by 1 s), in end order."""
    return [
        make_cdr(call_id=f"{prefix}{i:03d}", did=did, callee=did, start_s=start_s + i, end_s=start_s + length_s + i)
        for i in range(n)
    ]


def run(cdrs, context=None):
    det, context = DidConcurrencyDetector(), context or ctx()
    state = det.initial_state()
    out = []
    for c in cdrs:
        out += det.update(state, c, context)
        out += det.advance(state, c.end.timestamp() - 300, context)
    out += det.advance(state, float("inf"), context)
    return out, state


@pytest.mark.parametrize(
    ("calls", "peak"),
    [
        ([], 0),
        ([[0, 10]], 1),
        ([[0, 10], [10, 20]], 1),  # touching end-to-start: no overlap
        ([[0, 10], [9, 20]], 2),
        ([[0, 10], [0, 10], [0, 10]], 3),
        ([[0, 0], [0, 10]], 1),  # zero-length call occupies nothing
        ([[0, 100], [10, 20], [20, 30], [30, 40]], 2),
    ],
)
def test_peak_of(calls, peak):
    assert peak_of(calls) == peak


def test_add_call_profile_matches_sweep():
    calls: list[list[float]] = []
    intervals = [(0, 50), (10, 60), (20, 30), (30, 70), (60, 61), (5, 65)]
    best = 0
    for s, e in sorted(intervals, key=lambda x: x[1]):
        best = max(best, max((n for _, n in add_call(calls, s, e)), default=0))
    assert best == peak_of([list(i) for i in intervals]) == 4


def test_exactly_at_capacity_is_no_event():
    events, _ = run(overlapping(20))
    assert events == []


def test_one_above_capacity_gives_one_event_with_exact_fields():
    events, _ = run(overlapping(21))
    assert len(events) == 1
    ev = events[0]
    assert ev.type is EventType.CAPACITY_INCREASE and ev.level == "billing"
    assert (ev.scope_kind, ev.scope_value) == (ScopeKind.DID, DID)
    assert ev.extra["observed_peak"] == 21
    assert ev.extra["current_capacity"] == 20
    assert ev.extra["proposed_capacity"] == 30
    first = BASE_TIME + timedelta(seconds=20)  # the 21st call starts at +20 s, all 21 overlap then
    assert ev.extra["first_exceeded_at"] == first
    assert ev.extra["due_by"] == first + timedelta(days=30)
    assert ev.evidence["sample_call_ids"] == [f"c{i:03d}" for i in range(20, 21)]


def test_observed_peak_is_the_real_peak_not_the_limit():
    events, _ = run(overlapping(27))
    assert [e.extra["observed_peak"] for e in events] == [27]
    assert events[0].extra["proposed_capacity"] == 30


def test_touching_calls_do_not_overlap():
    # 20 calls [0, 300) and 20 calls [300, 600): touching end-to-start, peak 20
    first = [make_cdr(call_id=f"e{i}", did=DID, start_s=0, end_s=300) for i in range(20)]
    second = [make_cdr(call_id=f"f{i}", did=DID, start_s=300, end_s=600) for i in range(20)]
    assert run(first + second)[0] == []
    # one more call starting at 299 overlaps the first 20: 21
    extra = make_cdr(call_id="g", did=DID, start_s=299, end_s=301)
    assert [e.extra["observed_peak"] for e in run([*first, extra, *second])[0]] == [21]


def test_inbound_and_outbound_count_together():
    inbound = overlapping(11)
    outbound = [
        make_cdr(call_id=f"o{i}", direction=Direction.OUTBOUND, caller=DID, callee="+390612345678", did=DID,
                 start_s=i, end_s=300 + i)
        for i in range(10)
    ]
    events, _ = run(sorted(inbound + outbound, key=lambda c: c.end))
    assert [e.extra["observed_peak"] for e in events] == [21]


def test_capacity_override_and_levels():
    context = ctx(did_capacity={DID: 60})
    assert run(overlapping(60), context)[0] == []
    assert [e.extra["observed_peak"] for e in run(overlapping(61), context)[0]] == [61]
    # a second, bigger episode fires again only above the proposed level (30)
    day2 = overlapping(25, start_s=86_400, prefix="x") + overlapping(33, start_s=2 * 86_400, prefix="y")
    events, _ = run(overlapping(21) + day2)
    assert [(e.extra["current_capacity"], e.extra["observed_peak"]) for e in events] == [(20, 21), (30, 33)]


def test_unanswered_calls_can_be_excluded():
    cdrs = [*overlapping(20), make_cdr(call_id="ring", did=DID, start_s=10, end_s=400,
                                       disposition=Disposition.NO_ANSWER)]
    assert len(run(sorted(cdrs, key=lambda c: c.end))[0]) == 1
    quiet = ctx(params={"count_unanswered": False})
    assert run(sorted(cdrs, key=lambda c: c.end), quiet)[0] == []


def test_event_waits_for_settle_time():
    params = DidConcurrencyParams(settle_s=600)
    det, context = DidConcurrencyDetector(), ctx(params=params.model_dump())
    state = det.initial_state()
    for c in overlapping(21):
        assert det.update(state, c, context) == []
    peak_at = BASE_TIME.timestamp() + 20
    assert det.advance(state, peak_at + 599, context) == []
    assert len(det.advance(state, peak_at + 600, context)) == 1


# ---------------------------------------------------------------- never evidence, capacity for fraud


def outbound(n: int, callee: str, did: str = DID, prefix: str = "o", length_s: float = 300):
    """n outbound calls from ``did`` to ``callee`` that all overlap (staggered by 1 s)."""
    return [make_cdr(call_id=f"{prefix}{i:03d}", direction=Direction.OUTBOUND, caller=did, did=did, callee=callee,
                     start_s=i, end_s=length_s + i) for i in range(n)]


def inbound_from(callers: list[str], prefix: str = "i"):
    return [make_cdr(call_id=f"{prefix}{i:03d}", caller=caller, callee=DID, did=DID, start_s=i, end_s=300 + i)
            for i, caller in enumerate(callers)]


@pytest.mark.parametrize("callee", ["112", "113", "+39800123456", "+80012345678"])
def test_outbound_emergency_and_toll_free_calls_occupy_no_capacity(callee):
    events, state = run(outbound(40, callee))
    assert events == [] and state["dids"] == {}


def test_an_inbound_caller_id_is_not_trusted_to_skip_a_call():
    # "112" or a toll-free number presented as caller id can be spoofed: the calls still occupy the DID
    events, _ = run(inbound_from(["112", "+39800123456"] * 11))
    assert [e.extra["observed_peak"] for e in events] == [22]


def _rated_ctx(**kw):
    from tollguard.rates import RateTable

    return ctx(rates=RateTable(), high_risk_prefixes=("+979", "+881", "+882", "+883"), **kw)


@pytest.mark.parametrize(
    ("cdrs", "suspected", "signs", "cost"),
    [
        # 21 honest national calls: an ordinary raise, nothing priced
        (outbound(21, "+390612345678"), False, {"premium": 0, "rate": 0, "foreign_inbound": 0, "origin_ranges": []},
         None),
        # 21 lines to IT 899 (premium; EUR 0.50 + 1.50/min, 5 min each = EUR 8 a call)
        (outbound(21, "+39899123456"), True, {"premium": 21, "rate": 0, "foreign_inbound": 0, "origin_ranges": []},
         168.0),
        # 25 = 15 honest + 10 to Sao Tome (IRSF range, EUR 1.20/min >= 0.25): 15 alone fit in 20
        (sorted(outbound(15, "+390612345678") + outbound(10, "+2399901234", prefix="s"), key=lambda c: c.end),
         True, {"premium": 0, "rate": 10, "foreign_inbound": 0, "origin_ranges": []}, 60.0),
        # 25 = 22 honest + 3 to Sao Tome: the honest calls alone exceed 20, an ordinary raise (signs reported)
        (sorted(outbound(22, "+390612345678") + outbound(3, "+2399901234", prefix="s"), key=lambda c: c.end),
         False, {"premium": 0, "rate": 3, "foreign_inbound": 0, "origin_ranges": []}, 18.0),
        # pumping: 24 inbound calls from two foreign ranges (+37126, +44762)
        (inbound_from(["+37126123456", "+447624123456"] * 12), True,
         {"premium": 0, "rate": 0, "foreign_inbound": 24, "origin_ranges": ["+37126", "+44762"]}, None),
        # callers from 24 foreign ranges: no pumping pattern
        (inbound_from([f"+49{150 + i}1234567" for i in range(24)]), False,
         {"premium": 0, "rate": 0, "foreign_inbound": 24, "origin_ranges": [f"+49{150 + i}" for i in range(10)]},
         None),
    ],
)
def test_capacity_increase_notes_fraud_signs_at_the_peak(cdrs, suspected, signs, cost):
    events, _ = run(cdrs, _rated_ctx())
    (ev,) = events
    assert ev.type is EventType.CAPACITY_INCREASE  # still emitted: the contract owes the raise within 30 days
    assert ev.evidence["fraud_suspected"] is suspected
    assert ev.evidence["suspect_calls_at_peak"] == signs
    assert (ev.evidence["estimated_cost"], ev.evidence["currency"]) == (cost, "EUR")
    assert ("Fraud suspected" in ev.reason) is suspected
    if suspected:
        assert ev.reason.endswith("hold the raise until the fraud checks (clause 8.2) are verified.")
