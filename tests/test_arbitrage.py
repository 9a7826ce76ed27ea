"""arbitrage: reward / auto top-up, inbound pumping, high-cost minutes above history."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from detectors.arbitrage import ArbitrageDetector, ArbitrageParams
from detectors.base import CustomerContext
from detectors.premium_destination import PremiumDestinationParams
from tollguard.cdr import Direction, Disposition
from tollguard.events import EventType, ScopeKind
from tollguard.testing import BASE_TIME, make_cdr

HIGH_RISK = ("+979", "+881", "+882", "+883")
CLI_A = "+390298765432"
CLI_B = "+390298765433"
DID = "+390298765400"
MOBILE = "+393331234567"  # IT mobile: a top-up target
MOBILE_2 = "+393331234568"
ST_MOBILE = "+2399901234"  # Sao Tome mobile, +239: on the IRSF list
T0 = BASE_TIME.timestamp()


def ctx(params: dict | None = None, country: str = "IT", **kw) -> CustomerContext:
    return CustomerContext(
        "c1",
        country=country,
        params={
            "premium_destination": PremiumDestinationParams(),
            "arbitrage": ArbitrageParams(**(params or {})),
        },
        high_risk_prefixes=HIGH_RISK,
        **kw,
    )


def out(i: int, callee: str, talk_s: float, end_s: float, cli: str = CLI_A, prefix: str = "o", **kw):
    """Outbound call ending at ``end_s`` (seconds after BASE_TIME), answered when ``talk_s`` > 0."""
    fields = dict(call_id=f"{prefix}{i:03d}", direction=Direction.OUTBOUND, caller=cli, did=cli,
                  callee=callee)
    if talk_s > 0:
        fields.update(start_s=end_s - talk_s - 5, answer_s=end_s - talk_s, end_s=end_s)
    else:
        fields.update(start_s=end_s - 20, end_s=end_s, disposition=Disposition.NO_ANSWER)
    fields.update(kw)
    return make_cdr(**fields)


def inb(i: int, caller: str, talk_s: float, end_s: float, did: str = DID):
    fields = dict(call_id=f"i{i:03d}", direction=Direction.INBOUND, caller=caller, callee=did, did=did)
    if talk_s > 0:
        fields.update(start_s=end_s - talk_s - 5, answer_s=end_s - talk_s, end_s=end_s)
    else:
        fields.update(start_s=end_s - 20, end_s=end_s, disposition=Disposition.NO_ANSWER)
    return make_cdr(**fields)


def run(cdrs, context: CustomerContext | None = None, state: dict | None = None):
    """Decisions per CDR (list of lists) and the final state; advance follows every CDR."""
    det, context = ArbitrageDetector(), context or ctx()
    state = det.initial_state() if state is None else state
    per_cdr = []
    for c in cdrs:
        per_cdr.append(det.update(state, c, context))
        det.advance(state, c.end.timestamp(), context)
    return per_cdr, state


def levels(per_cdr) -> list[str | None]:
    return [ds[0].level if ds else None for ds in per_cdr]


def reward_calls(n: int, callee: str = MOBILE, talks=(45,), cli: str = CLI_A):
    """``n`` answered calls to ``callee``, 30 s apart, first ending at 60 s, talk times cycling ``talks``."""
    return [out(i, callee, talks[i % len(talks)], 30.0 * i + 60, cli=cli) for i in range(n)]


def test_empty_window_gives_nothing():
    det, context = ArbitrageDetector(), ctx()
    state = det.initial_state()
    assert det.advance(state, T0, context) == []
    assert det.advance(state, float("inf"), context) == []
    assert state["reward"] == {} and state["pump"] == {} and state["hc"]["calls"] == []


# ---------------------------------------------------------------- a. reward / auto top-up


@pytest.mark.parametrize(
    ("n_calls", "last_level"),
    [(29, None), (30, "warning"), (59, "warning"), (60, "critical")],
)
def test_reward_call_count_thresholds(n_calls, last_level):
    per_cdr, _ = run(reward_calls(n_calls))
    expected = [None] * 29 + ["warning"] * min(n_calls - 29, 30) + (["critical"] if n_calls == 60 else [])
    assert levels(per_cdr) == expected
    last = per_cdr[-1][0] if per_cdr[-1] else None
    assert (last.level if last else None) == last_level
    if last:
        assert last.type is (EventType.SUSPENSION if last_level == "critical" else EventType.ALERT)
        assert (last.scope_kind, last.scope_value) == (ScopeKind.DESTINATION_PREFIX, MOBILE)


@pytest.mark.parametrize(
    ("talks", "cv", "level"),
    [
        ((45,), 0.0, "warning"),
        ((57, 63), 0.05, "warning"),  # std 3 / mean 60: exactly at reward_max_duration_cv (inclusive)
        ((56, 64), 0.0667, None),  # std 4 / mean 60: above
        ((20, 300, 45, 600, 90), None, None),  # human talk times
    ],
)
def test_reward_duration_cv(talks, cv, level):
    per_cdr, state = run(reward_calls(30, talks=talks))
    assert levels(per_cdr)[-1] == level
    if level:
        assert per_cdr[-1][0].evidence["cv"] == cv


def test_unanswered_calls_are_not_reward_evidence():
    per_cdr, state = run([out(i, MOBILE, 0, 30.0 * i + 60) for i in range(80)])
    assert levels(per_cdr) == [None] * 80 and state["reward"] == {}


@pytest.mark.parametrize(
    ("dests", "clis", "kind", "value"),
    [
        ([MOBILE], [CLI_A, CLI_B], ScopeKind.DESTINATION_PREFIX, MOBILE),
        ([MOBILE, MOBILE_2], [CLI_A], ScopeKind.CLI, CLI_A),  # a few numbers, one CLI dials them
        ([MOBILE, MOBILE_2], [CLI_A, CLI_B], ScopeKind.DESTINATION_PREFIX, MOBILE_2),  # per number
        ([f"+39333123457{d}" for d in range(4)], [CLI_A], ScopeKind.CLI, CLI_A),  # > 3 numbers, one CLI
        ([f"+39333123457{d}" for d in range(4)], [CLI_A, CLI_B], ScopeKind.ACCOUNT, "c1"),  # > 3 numbers
    ],
)
def test_reward_scope(dests, clis, kind, value):
    # each number gets 30 calls from the CLIs in turn (all numbers interleaved), 10 s apart
    cdrs = [out(i, dests[i % len(dests)], 45, 10.0 * i + 60, cli=clis[(i // len(dests)) % len(clis)])
            for i in range(30 * len(dests))]
    per_cdr, _ = run(cdrs)
    last = per_cdr[-1][0]
    assert (last.type, last.level) == (EventType.ALERT, "warning")
    assert (last.scope_kind, last.scope_value) == (kind, value)
    assert last.evidence["cluster"] == {d: 30 for d in sorted(dests)}


def test_reward_scope_widens_as_a_second_number_qualifies():
    cdrs = [out(i, [MOBILE, MOBILE_2][i % 2], 45, 10.0 * i + 60) for i in range(60)]
    per_cdr, _ = run(cdrs)
    fired = [(i, ds[0].scope_kind, ds[0].scope_value) for i, ds in enumerate(per_cdr) if ds]
    assert fired == [(58, ScopeKind.DESTINATION_PREFIX, MOBILE), (59, ScopeKind.CLI, CLI_A)]


def test_reward_evidence_and_reason():
    per_cdr, _ = run(reward_calls(60))
    dec = per_cdr[-1][0]
    assert dec.episode == "2026-01-05T09:15:30Z"  # the 30th call: 30 * 29 + 60 s
    assert dec.evidence == {
        "check": "reward",
        "destination": MOBILE,
        "calls": 60,
        "mean_billsec_s": 45.0,
        "cv": 0.0,
        "cluster": {MOBILE: 60},
        "clis": [CLI_A],
        "window_s": 3600,
        "thresholds": {"reward_min_calls": 30, "reward_critical_calls": 60, "reward_max_duration_cv": 0.05,
                       "reward_max_destinations": 3},
        "sample_call_ids": [f"o{i:03d}" for i in range(50, 60)],
    }
    assert dec.reason == (
        "Customer c1 made 60 answered calls of near-constant length (mean 45.0 s, CV 0.000) to "
        "+393331234567 in the last 60 min (1 such number(s) from 1 CLI(s)); the critical threshold is 60 "
        "calls with CV <= 0.05 (clause 8.2, reward/auto top-up), so destination_prefix +393331234567 "
        "is suspended."
    )


def test_reward_window_slides():
    # 30 calls, then the first leaves the window exactly when the 31st arrives: still 30
    cdrs = reward_calls(30) + [out(30, MOBILE, 45, 60 + 3600)]
    per_cdr, state = run(cdrs)
    assert levels(per_cdr)[-2:] == ["warning", "warning"]
    assert len(state["reward"][MOBILE]["calls"]) == 30
    # a 32nd call at 3721 s: calls ending at 60, 90 and 120 s have left, 27 + 2 = 29 in the window
    per_cdr, _ = run(cdrs + [out(31, MOBILE, 45, 3721)])
    assert levels(per_cdr)[-1] is None


# ---------------------------------------------------------------- b. inbound pumping

RANGES = ["+37126", "+44762", "+39061", "+33612"]  # 5 digits after "+" name a range (the default)


def pump(n: int, n_ranges: int = 2, talk_s: float = 300, start: float = 0):
    return [inb(i, f"{RANGES[i % n_ranges]}{i:06d}", talk_s, start + 30.0 * i + 400) for i in range(n)]


@pytest.mark.parametrize(
    ("n_calls", "last_level"),
    [(59, None), (60, "warning"), (119, "warning"), (120, "critical")],
)
def test_pumping_call_thresholds(n_calls, last_level):
    per_cdr, _ = run(pump(n_calls))
    assert levels(per_cdr)[-1] == last_level
    assert levels(per_cdr)[:59] == [None] * 59
    if last_level:
        dec = per_cdr[-1][0]
        assert (dec.scope_kind, dec.scope_value) == (ScopeKind.DID, DID)
        assert dec.type is (EventType.SUSPENSION if last_level == "critical" else EventType.ALERT)


@pytest.mark.parametrize(("n_ranges", "level"), [(1, "warning"), (3, "warning"), (4, None)])
def test_pumping_origin_ranges(n_ranges, level):
    per_cdr, _ = run(pump(60, n_ranges=n_ranges))
    assert levels(per_cdr)[-1] == level
    if level:
        assert len(per_cdr[-1][0].evidence["origin_ranges"]) == n_ranges


@pytest.mark.parametrize(("talk_s", "level"), [(119, None), (120, "warning"), (900, "warning")])
def test_pumping_mean_duration(talk_s, level):
    assert levels(run(pump(60, talk_s=talk_s))[0])[-1] == level


def test_pumping_acd_counts_answered_calls_only():
    cdrs = pump(50) + [inb(50 + i, f"+390612{i:06d}", 0, 30.0 * (50 + i) + 400) for i in range(10)]
    per_cdr, _ = run(cdrs)
    dec = per_cdr[-1][0]
    assert (dec.level, dec.evidence["calls"], dec.evidence["answered_calls"], dec.evidence["acd_s"]) == (
        "warning", 60, 50, 300.0)


def test_pumping_is_per_did_and_benign_inbound_is_not_pumping():
    two_dids = [inb(i, f"+390612{i:06d}", 300, 30.0 * i + 400, did=[DID, CLI_A][i % 2]) for i in range(100)]
    assert levels(run(two_dids)[0]) == [None] * 100
    rnd = random.Random(3)
    many = [inb(i, f"+39{rnd.randint(200000000, 399999999)}", 300, 30.0 * i + 400) for i in range(150)]
    assert levels(run(many)[0]) == [None] * 150


# ---------------------------------------------------------------- c. high-cost minutes


@pytest.mark.parametrize(
    ("talks", "level"),
    [
        ([1799], None),  # 29.98 min, no history: needs max(30, 5 x 5 min/h) = 30 min
        ([1800], "warning"),  # exactly 30 min
        ([600, 600, 600], "warning"),
        ([3600, 3599], "warning"),  # one second below 120 min
        ([3600, 3600], "critical"),  # exactly 120 min
    ],
)
def test_high_cost_thresholds_without_history(talks, level):
    cdrs = [out(i, ST_MOBILE, t, 3500.0 + i) for i, t in enumerate(talks)]
    per_cdr, _ = run(cdrs)
    assert levels(per_cdr)[-1] == level
    if level:
        dec = per_cdr[-1][0]
        assert (dec.scope_kind, dec.scope_value) == (ScopeKind.OUTBOUND_INTERNATIONAL, "c1")
        assert dec.evidence["baseline_minutes_per_hour"] == 5
        assert dec.evidence["minutes_by_country_code"] == {"+239": round(sum(talks) / 60, 3)}


@pytest.mark.parametrize(("n_calls", "level"), [(4, None), (5, "warning"), (6, "critical")])
def test_high_cost_needs_factor_times_own_history(n_calls, level):
    # alpha 1: baseline = the last closed hour. Hour 0: 20 min; hour 1: n calls of 20 min.
    context = ctx({"high_cost_baseline_alpha": 1.0, "high_cost_critical_minutes": 120})
    history = [out(0, ST_MOBILE, 1200, 1300, prefix="h")]
    burst = [out(i, ST_MOBILE, 1200, 5000.0 + i) for i in range(n_calls)]
    per_cdr, state = run(history + burst, context)
    assert levels(per_cdr)[-1] == level
    assert state["hc"]["base"] == 20.0 and state["hc"]["hours"] == 1
    if level:
        ev = per_cdr[-1][0].evidence
        assert ev["thresholds"]["required_minutes"] == 100.0
        assert ev["ratio_to_baseline"] == n_calls * 20 / 20


def test_high_cost_baseline_is_an_hourly_ewma():
    # 1 min per hour for 3 hours, then an empty hour; alpha 0.05, start 5 min/h
    cdrs = [out(h, ST_MOBILE, 60, 3600.0 * h + 100) for h in range(3)]
    cdrs.append(out(9, "+390612345678", 60, 3600 * 4 + 1))  # any CDR of hour 4 closes hour 3 (empty)
    _, state = run(cdrs)
    expected = 5.0
    for minutes in (1.0, 1.0, 1.0, 0.0):
        expected = 0.95 * expected + 0.05 * minutes
    assert state["hc"]["base"] == pytest.approx(expected, rel=1e-12)
    assert state["hc"]["hours"] == 4


@pytest.mark.parametrize(
    ("callee", "country", "kw"),
    [
        ("+390612345678", "IT", {}),  # national
        ("+4915112345678", "IT", {}),  # international but not on the list
        ("+37120123456", "LV", {}),  # +371 is on the list, but national for a Latvian customer
        ("+800 1234 5678", "IT", {}),  # international toll-free
        (ST_MOBILE, "IT", {"allow_destinations": ("+239",)}),
        ("112", "IT", {}),
    ],
)
def test_high_cost_never_counted(callee, country, kw):
    cdrs = [out(i, callee, 3600, 3600.0 + i) for i in range(3)]
    per_cdr, state = run(cdrs, ctx(country=country, **kw))
    assert levels(per_cdr) == [None] * 3 and state["hc"]["calls"] == []


@pytest.mark.parametrize(
    ("callee", "kw"),
    [("112", {}), ("+39800123456", {}), (MOBILE, {"allow_destinations": ("+39333",)}),
     (MOBILE, {"allow_destinations": (MOBILE,)})],
)
def test_reward_never_counted(callee, kw):
    per_cdr, state = run(reward_calls(70, callee=callee), ctx(**kw))
    assert levels(per_cdr) == [None] * 70 and state["reward"] == {}


# ---------------------------------------------------------------- shared properties


def benign_traffic(seed: int = 11, n: int = 600):
    rnd = random.Random(seed)
    pool = ["+390612345678", "+390298765400", "+393331234567", "+393471112233", "+4915112345678",
            "+33612345678", "+442079460000", "+12025550143", "+39800123456", "112"]
    cdrs, t = [], 0.0
    for i in range(n):
        t += rnd.uniform(5, 40)
        talk = rnd.choice([0, rnd.uniform(5, 600)])
        if rnd.random() < 0.4:
            caller = f"+39{rnd.randint(200000000, 399999999)}"
            cdrs.append(inb(i, caller, talk, t, did=rnd.choice(["+390298765401", CLI_A])))
        else:
            cdrs.append(out(i, rnd.choice(pool), talk, t, cli=rnd.choice([CLI_A, CLI_B])))
    return cdrs


def test_benign_mixed_traffic_gives_nothing():
    per_cdr, state = run(benign_traffic())
    assert all(ds == [] for ds in per_cdr)


def test_state_is_bounded_by_the_window():
    det, context = ArbitrageDetector(), ctx()
    state = det.initial_state()
    for c in sorted(reward_calls(40) + pump(70) + benign_traffic(n=100), key=lambda c: c.end):
        det.update(state, c, context)
    assert state["reward"] and state["pump"]
    det.advance(state, state["last_end_s"] + 3600, context)
    assert state["reward"] == {} and state["pump"] == {} and state["hot"] == []
    assert state["hc"]["calls"] == [] and state["hc"]["by_cc"] == {}


def test_reset_forgets_the_scope():
    det, context = ArbitrageDetector(), ctx()
    state = det.initial_state()
    for c in sorted(reward_calls(40) + pump(70), key=lambda c: c.end):
        det.update(state, c, context)
    det.reset(state, ScopeKind.DID, DID)
    assert state["pump"] == {} and MOBILE in state["reward"]
    det.reset(state, ScopeKind.DESTINATION_PREFIX, MOBILE)
    assert state["reward"] == {} and state["hot"] == []


def test_an_unknown_number_type_is_refused():
    # the ranges of the numeric thresholds and unknown keys: tests/test_detector_checks.py
    with pytest.raises(ValidationError, match="high_cost_number_types.0"):
        ArbitrageParams(high_cost_number_types=["bogus"])
