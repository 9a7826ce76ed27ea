"""premium_destination: attempts / minutes / parallel-call thresholds, scope, exclusions, cost, state bounds, reset."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from detectors.arbitrage import ArbitrageParams
from detectors.base import CustomerContext
from detectors.premium_destination import PremiumDestinationDetector, PremiumDestinationParams
from tollguard.cdr import Direction, Disposition
from tollguard.events import EventType, ScopeKind
from tollguard.rates import EXAMPLE_RATES, RateTable
from tollguard.testing import BASE_TIME, make_cdr

HIGH_RISK = ("+979", "+881", "+882", "+883")
CLI_A = "+390298765432"
CLI_B = "+390298765433"
IT_PREMIUM = "+39899123456"  # libphonenumber: IT premium rate, range +39 899
GB_PREMIUM = "+449012345678"  # GB premium rate, international from IT
SATELLITE = "+881612345678"  # +881 Global Mobile Satellite System: operator high-risk prefix
T0 = BASE_TIME.timestamp()


def ctx(params: dict | None = None, **kw) -> CustomerContext:
    return CustomerContext(
        "c1",
        country="IT",
        params={
            "premium_destination": PremiumDestinationParams(**(params or {})),
            "arbitrage": ArbitrageParams(),
        },
        high_risk_prefixes=HIGH_RISK,
        **kw,
    )


def call(i: int, callee: str, *, talk_s: float = 0, cli: str = CLI_A, at_s: float | None = None, **kw):
    """Outbound call ``i`` ending at ``at_s`` (default 60 s apart); answered when ``talk_s`` > 0."""
    end_s = 60.0 * i + 30 if at_s is None else at_s
    fields = dict(call_id=f"p{i:03d}", direction=Direction.OUTBOUND, caller=cli, did=cli, callee=callee)
    if talk_s > 0:
        fields.update(start_s=end_s - talk_s - 5, answer_s=end_s - talk_s, end_s=end_s)
    else:
        fields.update(start_s=end_s - 20, end_s=end_s, disposition=Disposition.NO_ANSWER)
    fields.update(kw)
    return make_cdr(**fields)


def run(cdrs, context: CustomerContext | None = None, state: dict | None = None):
    """Decisions per CDR (a list of lists) and the final state."""
    det, context = PremiumDestinationDetector(), context or ctx()
    state = det.initial_state() if state is None else state
    per_cdr = []
    for c in cdrs:
        per_cdr.append(det.update(state, c, context))
        det.advance(state, c.end.timestamp(), context)
    return per_cdr, state


def levels(per_cdr) -> list[str | None]:
    return [ds[0].level if ds else None for ds in per_cdr]


def test_empty_window_gives_nothing():
    det, context = PremiumDestinationDetector(), ctx()
    state = det.initial_state()
    assert det.advance(state, T0, context) == []
    assert det.advance(state, float("inf"), context) == []
    assert state == det.initial_state()


@pytest.mark.parametrize(
    ("n_calls", "expected"),
    [
        (1, [None]),
        (2, [None, None]),  # one below warn_attempts=3
        (3, [None, None, "warning"]),  # exactly at: inclusive
        (9, [None, None] + ["warning"] * 7),  # one below critical_attempts=10
        (10, [None, None] + ["warning"] * 7 + ["critical"]),
    ],
)
def test_attempt_thresholds_unanswered_calls_count(n_calls, expected):
    per_cdr, _ = run([call(i, IT_PREMIUM) for i in range(n_calls)])
    assert levels(per_cdr) == expected
    types = {d.type for ds in per_cdr for d in ds}
    assert types <= {EventType.ALERT, EventType.SUSPENSION}
    if expected[-1] == "critical":
        assert per_cdr[-1][0].type is EventType.SUSPENSION
    elif expected[-1] == "warning":
        assert per_cdr[-1][0].type is EventType.ALERT


@pytest.mark.parametrize(
    ("talk_s", "level", "minutes"),
    [
        (599, None, 9.983),  # one second below warn_minutes=10
        (600, "warning", 10.0),  # exactly at
        (1799, "warning", 29.983),
        (1800, "critical", 30.0),  # exactly at critical_minutes=30
    ],
)
def test_minute_thresholds_on_one_answered_call(talk_s, level, minutes):
    per_cdr, state = run([call(0, IT_PREMIUM, talk_s=talk_s, at_s=3600)])
    assert levels(per_cdr) == [level]
    assert round(state["billsec"] / 60, 3) == minutes
    if level:
        assert per_cdr[0][0].evidence["answered_minutes"] == minutes
        assert per_cdr[0][0].evidence["answered_calls"] == 1


@pytest.mark.parametrize(
    ("gap_s", "level"),
    [
        (3600, None),  # first call ended exactly window_s before the third: out (half-open window)
        (3599, "warning"),
    ],
)
def test_window_edge(gap_s, level):
    cdrs = [call(0, IT_PREMIUM, at_s=100), call(1, IT_PREMIUM, at_s=200),
            call(2, IT_PREMIUM, at_s=100 + gap_s)]
    assert levels(run(cdrs)[0])[-1] == level


@pytest.mark.parametrize(
    ("callees", "clis", "kind", "value"),
    [
        # all share the premium range +39 899 → that prefix
        (["+39899123456", "+39899000111", "+39899222333"], [CLI_A, CLI_B],
         ScopeKind.DESTINATION_PREFIX, "+39899"),
        # high-risk prefix wins over the number's own range
        (["+881612345678", "+881699999999"], [CLI_A, CLI_B], ScopeKind.DESTINATION_PREFIX, "+881"),
        # several prefixes, all international
        ([SATELLITE, GB_PREMIUM], [CLI_A, CLI_B], ScopeKind.OUTBOUND_INTERNATIONAL, "c1"),
        # national + international from one CLI
        ([IT_PREMIUM, GB_PREMIUM], [CLI_A], ScopeKind.CLI, CLI_A),
        # national + international from two CLIs
        ([IT_PREMIUM, GB_PREMIUM], [CLI_A, CLI_B], ScopeKind.ACCOUNT, "c1"),
        # a premium short number is its own prefix
        (["48280"], [CLI_A], ScopeKind.DESTINATION_PREFIX, "48280"),
    ],
)
@pytest.mark.parametrize(("n_calls", "etype", "level"), [(3, EventType.ALERT, "warning"),
                                                         (10, EventType.SUSPENSION, "critical")])
def test_scope_selection(callees, clis, kind, value, n_calls, etype, level):
    cdrs = [call(i, callees[i % len(callees)], cli=clis[i % len(clis)]) for i in range(n_calls)]
    last = run(cdrs)[0][-1]
    assert len(last) == 1
    dec = last[0]
    assert (dec.type, dec.level, dec.scope_kind, dec.scope_value) == (etype, level, kind, value)


@pytest.mark.parametrize(
    ("callee", "kw"),
    [
        ("112", {}),  # emergency
        ("113", {}),  # emergency (IT police)
        ("+39800123456", {}),  # toll-free
        ("+390612345678", {}),  # ordinary fixed line
        ("+393331234567", {}),  # ordinary mobile
        ("+4915112345678", {}),  # ordinary international mobile
        (IT_PREMIUM, {"allow_destinations": ("+39899",)}),  # allowlisted prefix
        (IT_PREMIUM, {"allow_destinations": (IT_PREMIUM,)}),  # allowlisted number
        (SATELLITE, {"allow_destinations": ("+8816",)}),  # allowlisted inside a high-risk prefix
        ("48280", {"allow_destinations": ("48280",)}),  # allowlisted short number
    ],
)
def test_never_counted(callee, kw):
    per_cdr, state = run([call(i, callee, talk_s=1800) for i in range(20)], ctx(**kw))
    assert levels(per_cdr) == [None] * 20
    assert state["calls"] == []


@pytest.mark.parametrize("direction", [Direction.INBOUND, Direction.INTERNAL])
def test_only_outbound_calls_count(direction):
    per_cdr, state = run([call(i, IT_PREMIUM, direction=direction) for i in range(12)])
    assert levels(per_cdr) == [None] * 12
    assert state["calls"] == []


def test_benign_mixed_traffic_gives_nothing():
    rnd = random.Random(7)
    pool = ["+390612345678", "+390298765400", "+393331234567", "+393471112233", "+4915112345678",
            "+33612345678", "+442079460000", "+12025550143", "+39800123456", "112"]
    cdrs, t = [], 0.0
    for i in range(400):
        t += rnd.uniform(5, 60)
        talk = rnd.choice([0, rnd.uniform(5, 900)])
        direction = rnd.choice([Direction.OUTBOUND] * 2 + [Direction.INBOUND, Direction.INTERNAL])
        cdrs.append(call(i, rnd.choice(pool), talk_s=talk, at_s=t, direction=direction))
    per_cdr, state = run(cdrs)
    assert all(ds == [] for ds in per_cdr)
    assert state["calls"] == []


def test_evidence_reason_and_episode():
    cdrs = [call(i, IT_PREMIUM, talk_s=60) for i in range(12)]
    per_cdr, _ = run(cdrs)
    warn, crit = per_cdr[2][0], per_cdr[9][0]
    assert warn.episode == crit.episode == per_cdr[11][0].episode == "2026-01-05T09:02:30Z"
    assert crit.occurred_at_s == T0 + 60 * 9 + 30
    assert crit.evidence == {
        "attempts": 10,
        "answered_calls": 10,
        "answered_minutes": 10.0,
        "parallel_calls": 2,  # each call starts 5 s before the previous one ends
        "estimated_cost": None,  # the context has no rate table
        "currency": "EUR",
        "by_prefix": {"+39899": 10},
        "international_calls": 0,
        "clis": 1,
        "window_s": 3600,
        "window_start": "2026-01-05T09:00:30Z",
        "thresholds": {
            "warn_attempts": 3, "warn_minutes": 10, "critical_attempts": 10, "critical_minutes": 30,
            "critical_parallel_calls": 3,
        },
        "sample_call_ids": [f"p{i:03d}" for i in range(10)],
    }
    assert per_cdr[11][0].evidence["sample_call_ids"] == [f"p{i:03d}" for i in range(2, 12)]
    assert crit.reason == (
        "Customer c1 made 10 calls (10.0 answered min, up to 2 at once) to premium/high-risk numbers (+39899) "
        "in the last 60 min, latest +39899123456; the critical threshold is 10 calls, 30 min or 3 simultaneous "
        "calls (clause 8.2), so calls to +39899 are suspended."
    )
    assert warn.reason.endswith("the warning threshold is 3 calls or 10 min (clause 8.2), so calls to "
                                "+39899 are flagged for review.")


def test_new_episode_after_the_window_empties():
    first = [call(i, IT_PREMIUM) for i in range(3)]
    later = [call(100 + i, IT_PREMIUM) for i in range(3)]  # 100 min later: first burst has left the window
    per_cdr, _ = run(first + later)
    assert per_cdr[2][0].episode == "2026-01-05T09:02:30Z"
    assert per_cdr[5][0].episode == "2026-01-05T10:42:30Z"


def test_state_is_bounded_by_the_window():
    det, context = PremiumDestinationDetector(), ctx()
    state = det.initial_state()
    for i in range(5):
        det.update(state, call(i, IT_PREMIUM, talk_s=10), context)
    det.advance(state, T0 + 4 * 60 + 30 + 3600, context)
    assert state["calls"] == [] and state["by_prefix"] == {} and state["by_cli"] == {}
    assert state["answered"] == 0 and state["ep"] is None


def test_reset_forgets_the_scope():
    det, context = PremiumDestinationDetector(), ctx()
    state = det.initial_state()
    for i in range(4):
        det.update(state, call(i, [IT_PREMIUM, GB_PREMIUM][i % 2]), context)
    det.reset(state, ScopeKind.DESTINATION_PREFIX, "+39899")
    assert [c[1] for c in state["calls"]] == ["p001", "p003"] and state["by_prefix"] == {"+44901": 2}
    det.reset(state, ScopeKind.ACCOUNT, "c1")
    assert state["calls"] == [] and state["intl"] == 0


def test_an_unknown_number_type_is_refused():
    # the ranges of the numeric thresholds and unknown keys: tests/test_detector_checks.py
    with pytest.raises(ValidationError, match=r"premium_types\.0"):
        PremiumDestinationParams(premium_types=["not_a_type"])


# ---------------------------------------------------------------------------------------- parallel calls


def parallel(n, callee=IT_PREMIUM, gap_s=1.0, talk_s=60.0, first=0, at_s=0.0):
    """``n`` calls to ``callee`` placed ``gap_s`` apart from ``at_s``, each answered after 5 s, talking ``talk_s``."""
    return [
        make_cdr(call_id=f"q{first + i:03d}", direction=Direction.OUTBOUND, caller=CLI_A, did=CLI_A, callee=callee,
                 start_s=at_s + i * gap_s, answer_s=at_s + i * gap_s + 5, end_s=at_s + i * gap_s + 5 + talk_s)
        for i in range(n)
    ]


def test_six_parallel_premium_calls_are_critical():
    # issue 9: six calls to Italian 899 numbers placed one per second, all in parallel, gave only an alert
    per_cdr, state = run(parallel(6))
    assert levels(per_cdr) == [None, None, "critical", "critical", "critical", "critical"]
    last = per_cdr[-1][0]
    assert (last.type, last.scope_kind, last.scope_value) == (EventType.SUSPENSION, ScopeKind.DESTINATION_PREFIX,
                                                              "+39899")
    assert last.evidence["parallel_calls"] == 6 and last.evidence["attempts"] == 6
    assert "up to 6 at once" in last.reason and "or 3 simultaneous calls" in last.reason
    assert state["by_parallel"] == {"1": 1, "2": 1, "3": 1, "4": 1, "5": 1, "6": 1}


@pytest.mark.parametrize(
    ("cdrs", "expected"),
    [
        # the same six calls one after another (each ends before the next starts): attempts alone, an alert
        (parallel(6, gap_s=100), [None, None, "warning", "warning", "warning", "warning"]),
        # two at a time, twice: below critical_parallel_calls (3)
        (parallel(2) + parallel(2, first=2, at_s=600), [None, None, "warning", "warning"]),
        # exactly three at once: inclusive
        (parallel(3), [None, None, "critical"]),
        # a call ending as the next starts does not overlap it (half-open intervals)
        (parallel(3, gap_s=65), [None, None, "warning"]),
    ],
    ids=["sequential", "pairs", "three", "touching"],
)
def test_parallel_calls_threshold(cdrs, expected):
    assert levels(run(cdrs)[0]) == expected


def test_parallel_emergency_and_toll_free_calls_never_count():
    # five calls to 112 and toll-free numbers in parallel with one premium call: one counted call, no parallel
    callees = ["112", "113", "+39800123456", "112", "+39800000111"]
    others = [c.model_copy(update={"callee": callee, "call_id": f"o{i}"})
              for i, (c, callee) in enumerate(zip(parallel(5), callees, strict=True))]
    cdrs = sorted(others + parallel(1, talk_s=70), key=lambda c: c.end)
    per_cdr, state = run(cdrs)
    assert levels(per_cdr) == [None] * 6
    assert [c[1] for c in state["calls"]] == ["q000"] and state["by_parallel"] == {"1": 1}


def test_parallel_calls_leave_with_the_window():
    cdrs = [*parallel(3), call(200, IT_PREMIUM, at_s=3 * 3600)]  # three hours after the burst: alone again
    per_cdr, state = run(cdrs)
    assert levels(per_cdr) == [None, None, "critical", None]
    assert state["by_parallel"] == {"1": 1}


def test_evidence_carries_the_estimated_cost_in_the_rate_table_currency():
    context = ctx(rates=RateTable(currency="EUR", prefixes=dict(EXAMPLE_RATES)))
    per_cdr, _ = run([*parallel(3), call(50, SATELLITE, at_s=700)], context)
    # three 1-minute +39899 calls at EUR 0.50 a call + 1.50/min; +881 is priced (5.00/min) but unanswered: free
    ev = per_cdr[-1][0].evidence
    assert (ev["estimated_cost"], ev["currency"]) == (6.0, "EUR")
    unpriced = ctx(rates=RateTable(currency="GBP", prefixes={}))
    ev = run(parallel(3), unpriced)[0][-1][0].evidence
    assert (ev["estimated_cost"], ev["currency"]) == (None, "GBP")


def test_a_state_written_before_parallel_calls_is_started_afresh():
    det, context = PremiumDestinationDetector(), ctx()
    state = {"calls": [[T0, "old", IT_PREMIUM, "+39899", 0, CLI_A, 0.0]], "billsec": 0.0, "answered": 0,
             "by_prefix": {"+39899": 1}, "by_cli": {CLI_A: 1}, "intl": 0, "last_end_s": T0, "ep": None}
    det.update(state, call(1, IT_PREMIUM), context)
    assert [c[1] for c in state["calls"]] == ["p001"] and state["by_prefix"] == {"+39899": 1}


def test_a_cleared_cli_takes_its_calls_out_of_the_parallel_peak():
    # two lines of CLI_A and one of CLI_B at once: three parallel calls, suspended; the CLI_A scope is cleared
    cdrs = parallel(2) + [c.model_copy(update={"caller": CLI_B, "did": CLI_B, "call_id": "b"}) for c in parallel(1)]
    det, context = PremiumDestinationDetector(), ctx()
    state = det.initial_state()
    for c in sorted(cdrs, key=lambda c: c.end):
        det.update(state, c, context)
    assert state["by_parallel"] == {"1": 1, "2": 1, "3": 1}
    det.reset(state, ScopeKind.CLI, CLI_A)
    assert [c[1] for c in state["calls"]] == ["b"] and state["by_parallel"] == {"1": 1}
