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
from tollguard.rates import Rate, RateTable
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


def inb(i: int, caller: str, talk_s: float, end_s: float, did: str = DID, prefix: str = "i"):
    fields = dict(call_id=f"{prefix}{i:03d}", direction=Direction.INBOUND, caller=caller, callee=did, did=did)
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

MOBILES = [f"+39333123457{d}" for d in range(5)]  # five IT mobiles: a scheme's top-up targets
RECEIVER = "+390612345678"  # an alarm receiving centre's line (IT fixed)


def scheme(n: int, numbers=MOBILES, clis=(CLI_A,), talk_s: float = 40.0, gap_s: float = 180.0, jitter_s=0.0,
           start_s: float = 0.0, prefix: str = "o"):
    """``n`` answered calls of ``talk_s`` (+- ``jitter_s``, alternating) round-robin over ``numbers`` and ``clis``."""
    return [out(i, numbers[i % len(numbers)], talk_s + (jitter_s if i % 2 else -jitter_s),
                start_s + gap_s * i + 60, cli=clis[(i // len(numbers)) % len(clis)], prefix=prefix)
            for i in range(n)]


@pytest.mark.parametrize(("n_calls", "last_level"), [(9, None), (10, "warning"), (14, "warning"), (15, "critical")])
def test_reward_call_count_thresholds(n_calls, last_level):
    per_cdr, _ = run(reward_calls(n_calls))
    assert levels(per_cdr) == [None] * 9 + ["warning"] * min(n_calls - 9, 5) + ["critical"] * (n_calls - 14)
    last = per_cdr[-1][0] if per_cdr[-1] else None
    assert (last.level if last else None) == last_level
    if last:
        assert last.type is (EventType.SUSPENSION if last_level == "critical" else EventType.ALERT)
        assert (last.scope_kind, last.scope_value) == (ScopeKind.DESTINATION_PREFIX, MOBILE)


def test_a_reward_scheme_spread_over_five_numbers_is_suspended():
    # 15 answered 40 +- 0.5 s calls from one CLI, 3 min apart, round-robin over five mobiles: three calls a
    # number (a per-number count never gets near any level), 15 for the set, the critical level
    per_cdr, state = run(scheme(15, jitter_s=0.5))
    assert [(ds[0].type, ds[0].evidence["calls"]) if ds else None for ds in per_cdr] == (
        [None] * 9 + [(EventType.ALERT, n) for n in range(10, 15)] + [(EventType.SUSPENSION, 15)])
    dec = per_cdr[-1][0]
    assert (dec.type, dec.level, dec.check, dec.scope_kind, dec.scope_value) == (
        EventType.SUSPENSION, "critical", "reward", ScopeKind.CLI, CLI_A)
    assert dec.episode == "2026-01-05T09:28:00Z"  # the 10th call (9 x 180 + 60 s) first put the set at the alert level
    assert dec.occurred_at_s == T0 + 14 * 180 + 60
    assert dec.evidence == {
        "check": "reward",
        "destination": MOBILES[4],
        "calls": 15,
        "destination_calls": 3,
        "mean_billsec_s": 39.967,  # eight calls of 39.5 s, seven of 40.5 s
        "cv": 0.0125,
        "cluster": {m: 3 for m in MOBILES},
        "clis": [CLI_A],
        "estimated_cost": None,
        "currency": "EUR",
        "cost_note": "the rules' rate table prices none of these numbers (" + ", ".join(MOBILES)
                     + "): no estimate (load the carrier's rates)",
        "window_s": 3600,
        "thresholds": {"reward_min_calls": 10, "reward_critical_calls": 15, "reward_max_duration_cv": 0.05,
                       "reward_min_billsec_s": 20, "reward_max_billsec_s": 600, "reward_min_number_calls": 2,
                       "reward_max_destinations": 3},
        "sample_call_ids": [f"o{i:03d}" for i in range(5, 15)],
    }
    assert dec.reason == (
        "Customer c1 made 15 answered calls of near-constant length (mean 40.0 s, CV 0.012) to 5 number(s) "
        "(+393331234570 3, +393331234571 3, +393331234572 3, +393331234573 3, +393331234574 3) from 1 CLI(s) in "
        "the last 60 min; the critical level is 15 such calls to a set of numbers (CV <= 0.05, mean 20-600 s; "
        "clause 8.2, reward/auto top-up), so calls presenting CLI +390298765432 are suspended."
    )
    assert state["hot"] == MOBILES


def test_a_reward_scheme_over_five_numbers_from_three_clis_suspends_the_account():
    per_cdr, _ = run(scheme(15, clis=(CLI_A, CLI_B, "+390298765434")))
    dec = per_cdr[-1][0]
    assert (dec.type, dec.scope_kind, dec.scope_value, dec.evidence["calls"]) == (
        EventType.SUSPENSION, ScopeKind.ACCOUNT, "c1", 15)
    assert dec.evidence["clis"] == [CLI_A, CLI_B, "+390298765434"]


def test_reward_cost_where_the_rate_table_prices_the_numbers():
    # a carrier's table pricing the mobiles' range: EUR 0.05 a call and 0.12 a minute
    rates = RateTable(prefixes={"+39333": Rate(per_min=0.12, per_call=0.05)})
    per_cdr, _ = run(scheme(15), ctx(rates=rates))
    ev = per_cdr[-1][0].evidence
    assert (ev["estimated_cost"], ev["currency"]) == (1.95, "EUR")  # 15 x (0.05 + 0.12 x 40 / 60)
    assert "cost_note" not in ev


@pytest.mark.parametrize(
    ("talks", "cv", "level"),
    [
        ((45,), 0.0, "critical"),
        ((57, 63), 0.05, "critical"),  # std 3 / mean 60: exactly at reward_max_duration_cv (inclusive)
        ((56, 64), None, None),  # std 4 / mean 60: above
        ((20, 300, 45, 600, 90), None, None),  # human talk times
    ],
)
def test_reward_duration_cv(talks, cv, level):
    per_cdr, _ = run(reward_calls(16, talks=talks))
    assert levels(per_cdr)[-1] == level
    if level:
        assert per_cdr[-1][0].evidence["cv"] == cv


def test_a_set_is_the_numbers_that_share_the_length():
    # two robots at 30 s and 90 s, eight calls each to two numbers each: two sets of 8, under the alert level
    apart = scheme(8, MOBILES[:2], talk_s=30.0, prefix="a") + scheme(8, MOBILES[2:4], talk_s=90.0, start_s=60,
                                                                    prefix="b")
    per_cdr, state = run(sorted(apart, key=lambda c: c.end))
    assert levels(per_cdr) == [None] * 16 and state["hot"] == MOBILES[:4]
    # the same two robots at one length: one set of 16 calls
    together = scheme(8, MOBILES[:2], talk_s=30.0, prefix="a") + scheme(8, MOBILES[2:4], talk_s=30.5, start_s=60,
                                                                       prefix="b")
    per_cdr, _ = run(sorted(together, key=lambda c: c.end))
    assert levels(per_cdr)[-1] == "critical" and per_cdr[-1][0].evidence["cluster"] == {m: 4 for m in MOBILES[:4]}


@pytest.mark.parametrize(
    ("receivers", "per_hour", "talk_s", "jitter_s"),
    [
        ([RECEIVER], 4 / 24, 12.0, 0.5),  # a few panels: a handful of test calls a day to one centre
        ([RECEIVER], 60, 12.0, 0.5),  # a monitoring firm's many panels: an hour of them, every hour
        ([RECEIVER, "+390298765411"], 100, 18.7, 0.8),  # the benchmark's closest trap (seed 1): 18.7 s, CV 0.04
    ],
)
def test_alarm_panels_test_calls_give_nothing(receivers, per_hour, talk_s, jitter_s):
    # short test calls of near-constant length (Contact ID report and kiss-off): below reward_min_billsec_s
    n = max(3, int(per_hour * 48))
    calls = scheme(n, receivers, clis=(CLI_A, CLI_B), talk_s=talk_s, gap_s=3600 / per_hour, jitter_s=jitter_s)
    per_cdr, state = run(calls)
    assert all(ds == [] for ds in per_cdr) and state["hot"] == []


def test_calls_of_many_minutes_are_not_reward_evidence():
    # 16 calls of exactly 30 minutes to one number: minutes fraud (IRSF, premium), not a per-call reward
    per_cdr, state = run([out(i, MOBILE, 1800, 120.0 * i + 1900) for i in range(16)])
    assert levels(per_cdr) == [None] * 16 and state["hot"] == []


def test_unanswered_calls_are_not_reward_evidence():
    per_cdr, state = run([out(i, MOBILE, 0, 30.0 * i + 60) for i in range(80)])
    assert levels(per_cdr) == [None] * 80 and state["reward"] == {}


@pytest.mark.parametrize(
    ("dests", "clis", "kind", "value"),
    [
        ([MOBILE], [CLI_A, CLI_B], ScopeKind.DESTINATION_PREFIX, MOBILE),
        ([MOBILE, MOBILE_2], [CLI_A], ScopeKind.CLI, CLI_A),  # a few numbers, one CLI dials them
        ([MOBILE, MOBILE_2], [CLI_A, CLI_B], ScopeKind.DESTINATION_PREFIX, MOBILE_2),  # number by number
        (MOBILES[:4], [CLI_A], ScopeKind.CLI, CLI_A),  # > 3 numbers, one CLI
        (MOBILES[:4], [CLI_A, CLI_B], ScopeKind.ACCOUNT, "c1"),  # > 3 numbers, several CLIs
    ],
)
def test_reward_scope(dests, clis, kind, value):
    # 12 calls (the alert level is 10) over the numbers, from the CLIs in turn (numbers interleaved), 10 s apart
    cdrs = [out(i, dests[i % len(dests)], 45, 10.0 * i + 60, cli=clis[(i // len(dests)) % len(clis)])
            for i in range(12)]
    per_cdr, _ = run(cdrs)
    last = per_cdr[-1][0]
    assert (last.type, last.level) == (EventType.ALERT, "warning")
    assert (last.scope_kind, last.scope_value) == (kind, value)
    assert last.evidence["cluster"] == {d: len(cdrs) // len(dests) for d in sorted(dests)}


def test_reward_scope_widens_as_a_second_number_joins():
    # ten calls to one number (its alert), then a second number at the same length joins the set
    cdrs = reward_calls(10) + [out(10 + i, MOBILE_2, 45, 30.0 * (10 + i) + 60) for i in range(2)]
    per_cdr, _ = run(cdrs)
    fired = [(i, ds[0].scope_kind, ds[0].scope_value, ds[0].evidence["calls"]) for i, ds in enumerate(per_cdr) if ds]
    assert fired == [(9, ScopeKind.DESTINATION_PREFIX, MOBILE, 10), (11, ScopeKind.CLI, CLI_A, 12)]


def test_reward_evidence_and_reason():
    per_cdr, _ = run(reward_calls(15))
    dec = per_cdr[-1][0]
    assert dec.episode == "2026-01-05T09:05:30Z"  # the 10th call: 30 * 9 + 60 s
    assert dec.evidence == {
        "check": "reward",
        "destination": MOBILE,
        "calls": 15,
        "destination_calls": 15,
        "mean_billsec_s": 45.0,
        "cv": 0.0,
        "cluster": {MOBILE: 15},
        "clis": [CLI_A],
        "estimated_cost": None,
        "currency": "EUR",
        "cost_note": "the rules' rate table prices none of these numbers (+393331234567): no estimate (load the "
                     "carrier's rates)",
        "window_s": 3600,
        "thresholds": {"reward_min_calls": 10, "reward_critical_calls": 15, "reward_max_duration_cv": 0.05,
                       "reward_min_billsec_s": 20, "reward_max_billsec_s": 600, "reward_min_number_calls": 2,
                       "reward_max_destinations": 3},
        "sample_call_ids": [f"o{i:03d}" for i in range(5, 15)],
    }
    assert dec.reason == (
        "Customer c1 made 15 answered calls of near-constant length (mean 45.0 s, CV 0.000) to 1 number(s) "
        "(+393331234567 15) from 1 CLI(s) in the last 60 min; the critical level is 15 such calls to a set of "
        "numbers (CV <= 0.05, mean 20-600 s; clause 8.2, reward/auto top-up), so calls to "
        "+393331234567 are suspended."
    )


def test_reward_window_slides():
    # 10 calls 6 min apart, then the first leaves the window exactly when the 11th arrives: still 10
    cdrs = [out(i, MOBILE, 45, 360.0 * i + 60) for i in range(11)]
    per_cdr, state = run(cdrs)
    assert levels(per_cdr)[-2:] == ["warning", "warning"]
    assert len(state["reward"][MOBILE]["calls"]) == 10
    # a 12th call at 4381 s: the calls ending at 60, 420 and 780 s have left (cutoff 781 s), 8 + 1 = 9
    per_cdr, _ = run([*cdrs, out(11, MOBILE, 45, 4381.0)])
    assert levels(per_cdr)[-1] is None


# ---------------------------------------------------------------- b. inbound pumping

RANGES = ["+37126", "+44762", "+23276", "+22236", "+25261"]  # 5 digits after "+" name a range (the default)
NATIONAL = ["+39320", "+39328", "+39333", "+39338", "+39340", "+39347", "+39348", "+39349", "+39366", "+39380",
            "+39020", "+39021", "+39061", "+39062", "+39011", "+39051", "+39055", "+39081"]


def pump(n: int, n_ranges: int = 2, talk_s: float = 300, start: float = 0, gap_s: float = 30.0, prefix: str = "i"):
    return [inb(i, f"{RANGES[i % n_ranges]}{i:06d}", talk_s, start + gap_s * i + 400, prefix=prefix)
            for i in range(n)]


def ordinary(n: int, start: float = 0, gap_s: float = 450.0, prefix: str = "h"):
    """``n`` honest inbound calls to the DID from national callers of many ranges, varied lengths."""
    return [inb(i, f"{NATIONAL[i % len(NATIONAL)]}{i:06d}", [40, 300, 90, 600, 150][i % 5], start + gap_s * i + 400,
                prefix=prefix) for i in range(n)]


@pytest.mark.parametrize(("n_calls", "last_level"), [(17, None), (18, "warning"), (23, "warning"), (24, "critical")])
def test_pumping_call_thresholds(n_calls, last_level):
    per_cdr, _ = run(pump(n_calls))
    assert levels(per_cdr) == [None] * 17 + ["warning"] * min(n_calls - 17, 6) + ["critical"] * (n_calls - 23)
    if last_level:
        dec = per_cdr[-1][0]
        assert (dec.scope_kind, dec.scope_value) == (ScopeKind.DID, DID)
        assert dec.type is (EventType.SUSPENSION if last_level == "critical" else EventType.ALERT)


def test_pumping_from_five_ranges_on_a_did_with_ordinary_traffic_is_suspended():
    # the DID's own callers: 8 an hour from national ranges, for three hours (its usual load) and on during the
    # attack; then a call a minute from five foreign mobile ranges in turn (the old rule, at most 3 ranges on the
    # DID, never held: 13 ranges in the window)
    honest = ordinary(32, gap_s=450.0)  # ends 400 s .. 14350 s
    attack = pump(60, n_ranges=5, start=3 * 3600.0, gap_s=60.0)  # ends 11200 s .. 14740 s
    cdrs = sorted(honest + attack, key=lambda c: c.end)
    per_cdr, _ = run(cdrs)
    fired = [(cdrs[i].call_id, ds[0].type, ds[0].evidence["top_range_calls"]) for i, ds in enumerate(per_cdr) if ds]
    assert fired[0] == ("i027", EventType.ALERT, 18)  # nothing before the attack's 28th call
    first = next(k for k, f in enumerate(fired) if f[1] is EventType.SUSPENSION)
    assert fired[first] == ("i037", EventType.SUSPENSION, 24)
    dec = next(ds[0] for ds in per_cdr if ds and ds[0].type is EventType.SUSPENSION)
    assert (dec.level, dec.check, dec.scope_kind, dec.scope_value) == ("critical", "pumping", ScopeKind.DID, DID)
    assert dec.episode == "2026-01-05T12:41:40Z"  # the alert's: 11200 + 27 x 60 s
    assert dec.evidence == {
        "check": "pumping",
        "did": DID,
        "calls": 46,
        "top_range_calls": 24,
        "top_share": 0.5217,
        "origin_ranges": {"+44762": 8, "+37126": 8, "+23276": 8},
        "other_ranges": {"ranges": 10, "calls": 22},  # two attack ranges (14 calls) and the DID's own callers
        "answered_calls": 24,
        "acd_s": 300.0,
        "minutes": 120.0,
        "usual_calls_per_hour": 5.4279,  # 5 before any hour closed, then the hours of 8 calls (alpha 0.05)
        "estimated_cost": None,
        "currency": "EUR",
        "cost_basis": "origin: the rate table's price of the caller's range (the operator's termination exposure)",
        "cost_note": "the rules' rate table prices none of these origins: no estimate (load the carrier's rates)",
        "window_s": 3600,
        "thresholds": {"pumping_min_calls": 18, "pumping_critical_calls": 24, "pumping_max_origin_ranges": 3,
                       "pumping_min_top_share": 0.5, "pumping_baseline_factor": 2, "pumping_prefix_digits": 5,
                       "pumping_min_acd_s": 120},
        "sample_call_ids": ["i022", "i025", "i026", "i027", "i030", "i031", "i032", "i035", "i036", "i037"],
    }
    assert dec.reason == (
        "DID +390298765400 received 24 of its 46 inbound calls in the last 60 min (52%) from 3 caller range(s) "
        "(+44762 8, +37126 8, +23276 8), 4.4x its usual 5.4 calls an hour, with a mean answered duration of 300 s; "
        "the critical level is 24 such calls (>= 50% of the DID's, >= 2x its usual, ACD >= 120 s; clause 8.2, "
        "traffic pumping), so DID +390298765400 is suspended."
    )
    assert [ds[0].type for ds in per_cdr[-5:]] == [EventType.SUSPENSION] * 5


@pytest.mark.parametrize(("n_ranges", "level"), [(1, "critical"), (3, "critical"), (5, "critical")])
def test_pumping_origin_ranges_are_judged_by_concentration_not_count(n_ranges, level):
    per_cdr, _ = run(pump(40, n_ranges=n_ranges))
    assert levels(per_cdr)[-1] == level
    assert sum(per_cdr[-1][0].evidence["origin_ranges"].values()) == min(40, 3 * 40 // n_ranges)


def test_pumping_needs_the_top_ranges_to_carry_half_the_calls():
    # 30 calls from five ranges among 30 ordinary calls: the top three carry 18 of 60 (30 %)
    mixed = sorted(pump(30, n_ranges=5, gap_s=100.0) + ordinary(30, gap_s=100.0), key=lambda c: c.end)
    assert levels(run(mixed)[0]) == [None] * 60


@pytest.mark.parametrize(("talk_s", "level"), [(119, None), (120, "warning"), (900, "warning")])
def test_pumping_mean_duration(talk_s, level):
    assert levels(run(pump(18, talk_s=talk_s))[0])[-1] == level


def test_pumping_acd_counts_answered_calls_of_the_top_ranges_only():
    cdrs = pump(15) + [inb(15 + i, f"+37126{i:06d}", 0, 30.0 * (15 + i) + 400) for i in range(3)]
    per_cdr, _ = run(cdrs)
    dec = per_cdr[-1][0]
    assert (dec.level, dec.evidence["top_range_calls"], dec.evidence["answered_calls"], dec.evidence["acd_s"]) == (
        "warning", 18, 15, 300.0)


def test_a_did_whose_callers_are_few_stays_quiet_at_its_usual_volume():
    # a branch-office line: 30 long calls an hour from two ranges, every hour for a day (its usual load), then
    # twice that: only the doubled hour is far above its own load
    usual = pump(30 * 24, gap_s=120.0)
    per_cdr, state = run(usual)
    assert [i for i, ds in enumerate(per_cdr) if ds][-1] < 30 * 20  # quiet once its load is learnt (<= 20 h)
    assert state["pump_base"][DID][0] > 15
    doubled = pump(120, start=30 * 24 * 120.0, prefix="d")
    per_cdr, _ = run(doubled, state=state)
    assert levels(per_cdr)[-1] == "critical"


def test_pumping_priced_by_origin():
    # the example rate table prices +371 (EUR 0.30 a minute) and +232 (EUR 0.90), not +44 7624
    per_cdr, _ = run(pump(24, n_ranges=3), ctx(rates=RateTable()))
    ev = per_cdr[-1][0].evidence
    assert (ev["estimated_cost"], ev["currency"]) == (8 * 1.5 + 8 * 4.5, "EUR")  # 5-minute calls
    assert ev["cost_basis"].startswith("origin")
    assert ev["cost_note"] == "8 of 24 answered calls come from origins the rate table does not price and count nothing"


def test_pumping_is_per_did_and_benign_inbound_is_not_pumping():
    # 34 long calls from one range: 17 on each of two DIDs stay under the alert level; on one DID, suspended
    two_dids = [inb(i, f"+390612{i:06d}", 300, 30.0 * i + 400, did=[DID, CLI_A][i % 2]) for i in range(34)]
    assert levels(run(two_dids)[0]) == [None] * 34
    assert levels(run([inb(i, f"+390612{i:06d}", 300, 30.0 * i + 400) for i in range(34)])[0])[-1] == "critical"
    rnd = random.Random(3)
    many = [inb(i, f"+39{rnd.randint(200000000, 399999999)}", 300, 30.0 * i + 400) for i in range(150)]
    assert levels(run(many)[0]) == [None] * 150
    hotline = [inb(i, f"{NATIONAL[rnd.randrange(len(NATIONAL))]}{i:06d}", rnd.uniform(60, 600), 18.0 * i + 400)
               for i in range(600)]  # 200 calls an hour, long, from the public's ranges
    assert levels(run(hotline)[0]) == [None] * 600


# ---------------------------------------------------------------- c. high-cost (IRSF)

TN_FIXED = "+21671234567"  # Tunisia, not on the IRSF list: counted once the customer's cold start is over
DAY_S = 86_400.0
HOUR0 = int(T0 // 3600)  # the UTC hour of BASE_TIME (epoch hours)


def lines_to(callee: str, n_lines: int, talk_s: float, end_s: float, prefix: str = "l", calls: int = 1):
    """``calls`` rounds of ``n_lines`` simultaneous answered calls of ``talk_s`` s to ``callee`` (ends from end_s)."""
    return [out(r * n_lines + i, callee, talk_s, end_s + r * (talk_s + 10) + i, prefix=prefix)
            for r in range(calls) for i in range(n_lines)]


def history(at_s: float = 0.0):
    """One national call: the customer's history starts at ``at_s``."""
    return [out(0, "+390612345678", 60, at_s, prefix="n")]


@pytest.mark.parametrize(
    ("talks", "level"),
    [
        ([1800], None),  # 30 min on one line: no parallel lines
        ([900, 899], None),  # 29.98 min on two lines
        ([900, 900], "warning"),  # exactly 30 min
        ([1800, 1799], "warning"),  # one second below 60 min
        ([1800, 1800], "critical"),  # exactly 60 min
    ],
)
def test_high_cost_minutes_and_lines_on_a_listed_unpriced_range(talks, level):
    # +239 is on the IRSF list, so it counts from the customer's first hour; no rate table: minutes
    cdrs = [out(i, ST_MOBILE, t, 3500.0 + i) for i, t in enumerate(talks)]
    per_cdr, _ = run(cdrs)
    assert levels(per_cdr)[-1] == level
    if level:
        ev = per_cdr[-1][0].evidence
        assert (per_cdr[-1][0].scope_kind, per_cdr[-1][0].scope_value) == (ScopeKind.OUTBOUND_INTERNATIONAL, "c1")
        assert ev["minutes"] == round(sum(talks) / 60, 3) and ev["lines"] == 2
        assert (ev["estimated_cost"], ev["currency"]) == (None, "EUR")  # nothing priced
        assert ev["new_destinations"] == ["+239"] and ev["cold_start"] is False


@pytest.mark.parametrize(("talk_s", "level", "cost"), [(740, None, 29.6), (750, "warning", 30.0),
                                                       (1500, "critical", 60.0)])
def test_high_cost_uses_the_rate_table_where_it_prices(talk_s, level, cost):
    # the example table prices +239 at EUR 1.20 a minute: two lines of talk_s each
    per_cdr, _ = run(lines_to(ST_MOBILE, 2, talk_s, 4000.0), ctx(rates=RateTable()))
    assert levels(per_cdr)[-1] == level
    if level:
        ev = per_cdr[-1][0].evidence
        assert (ev["estimated_cost"], ev["currency"], ev["minutes"]) == (cost, "EUR", 0)
        assert ev["destinations"] == {"+239": {"calls": 2, "minutes": round(2 * talk_s / 60, 3), "cost": cost,
                                               "new": True}}


def test_high_cost_adds_cost_and_minutes_as_shares_of_the_level():
    # after the cold start: EUR 15 to +239 (half the alert's EUR 30) and 15 unpriced minutes to Tunisia (half of 30)
    cdrs = history() + lines_to(ST_MOBILE, 1, 750, DAY_S + 1000, "s") + lines_to(TN_FIXED, 1, 900, DAY_S + 1200, "t")
    per_cdr, _ = run(cdrs, ctx(rates=RateTable()))
    dec = per_cdr[-1][0]
    assert dec.level == "warning" and dec.evidence["lines"] == 2
    assert (dec.evidence["estimated_cost"], dec.evidence["minutes"]) == (15.0, 15.0)
    assert dec.evidence["new_destinations"] == ["+239", "+216 TN"]


@pytest.mark.parametrize(
    ("start_s", "n_lines", "level"),
    [
        (DAY_S, 2, "critical"),  # after the 24-hour cold start: Tunisia is a new destination
        (3600.0, 2, None),  # in the cold start an unlisted destination needs 20 lines
        (3600.0, 19, None),
        (3600.0, 20, "critical"),
    ],
)
def test_high_cost_unlisted_destinations_and_the_cold_start(start_s, n_lines, level):
    per_cdr, _ = run(history() + lines_to(TN_FIXED, n_lines, 1800, start_s))
    assert levels(per_cdr)[-1] == level
    if level:
        ev = per_cdr[-1][0].evidence
        assert ev["new_destinations"] == ["+216 TN"] and ev["lines"] == n_lines
        assert ev["cold_start"] is (start_s < DAY_S)


def test_high_cost_a_destination_the_customer_calls_never_counts():
    # Tunisia called (one line) on day 2; four hours later, once the first call left the 3-hour window, two lines
    first = lines_to(TN_FIXED, 1, 600, DAY_S + 100, "a")
    later = lines_to(TN_FIXED, 2, 3600, DAY_S + 4 * 3600, "b", calls=3)
    per_cdr, state = run(history() + first + later)
    assert levels(per_cdr) == [None] * (1 + 1 + 6)
    assert state["hc"]["calls"] == []  # known unlisted calls are not even kept


def test_high_cost_many_countries_learnt_on_the_first_day_stay_silent():
    # a firm calls 40 countries on its first (cold) day, then the same countries on many lines the next day
    rnd = random.Random(3)
    countries = ["+4930123456", "+33142685300", "+442079460000", "+34912345678", "+12025550143", "+41446681800",
                 "+31201234567", "+3222345678", "+4312345678", "+46812345678"]
    day1 = [out(i, countries[i % 10], rnd.uniform(60, 900), 3600.0 * 8 + 120 * i, prefix="d") for i in range(100)]
    day2 = [out(i, countries[i % 10], rnd.uniform(600, 1800), DAY_S + 3600.0 * 8 + 20 * i, prefix="e")
            for i in range(100)]
    per_cdr, _ = run(history() + day1 + day2)
    assert all(ds == [] for ds in per_cdr)


@pytest.mark.parametrize(("n_calls", "level", "counted"), [(6, None, None), (7, "warning", 40.0),
                                                          (8, "critical", 60.0)])
def test_high_cost_a_listed_destination_counts_above_its_own_baseline(n_calls, level, counted):
    # alpha 1 and a 1-hour window: a listed destination's baseline is its last closed hour. Hour 0: 20 min to
    # +239 on one line (no alert); hour 1, once that call left the window: n lines of 20 min. Above
    # factor 5 x 20 min/h = 100 min, the excess counts: (20 n - 100) min.
    context = ctx({"high_cost_baseline_alpha": 1.0, "high_cost_window_s": 3600})
    first = [out(0, ST_MOBILE, 1200, 1300.0, prefix="h")]
    burst = [out(i, ST_MOBILE, 1200, 4900.0 + i) for i in range(n_calls)]
    per_cdr, state = run(first + burst, context)
    assert levels(per_cdr)[-1] == level
    assert state["hc"]["base"]["+239"] == [20.0, HOUR0 + 1] and state["hc"]["hours_seen"] == 1
    if level:
        ev = per_cdr[-1][0].evidence
        assert ev["baseline_minutes_per_hour"] == {"+239": 20.0}
        assert ev["minutes"] == counted and ev["new_destinations"] == [] and ev["lines"] == n_calls


def test_high_cost_baseline_is_an_hourly_ewma_per_listed_destination():
    # 1 min per hour to +239 for 3 hours, then an empty hour; alpha 0.05, from 0
    cdrs = [out(h, ST_MOBILE, 60, 3600.0 * h + 100) for h in range(3)]
    cdrs.append(out(9, "+390612345678", 60, 3600 * 4 + 1))  # any CDR of hour 4 closes hour 3 (empty)
    _, state = run(cdrs)
    expected = 0.0
    for _minutes in (1.0, 1.0, 1.0):
        expected = 0.95 * expected + 0.05 * 1.0
    value, hour = state["hc"]["base"]["+239"]
    assert value == pytest.approx(expected, rel=1e-12) and hour == HOUR0 + 3  # silent hour 3 decays it when read
    assert state["hc"]["hours_seen"] == 4


def test_high_cost_destinations_of_an_alert_stay_new_until_a_verdict_clears_them():
    # two lines to Tunisia on day 2 (critical), then again 5 hours later: still new (held), so critical again
    context = ctx()
    det, state = ArbitrageDetector(), ArbitrageDetector().initial_state()
    attack = history() + lines_to(TN_FIXED, 2, 1800, DAY_S)
    again = lines_to(TN_FIXED, 2, 1800, DAY_S + 5 * 3600, "b")
    for c in attack:
        det.update(state, c, context)
    assert state["hc"]["held"] == ["+216 TN"]
    assert [d.level for c in again for d in det.update(state, c, context)] == ["critical"]
    det.reset(state, ScopeKind.OUTBOUND_INTERNATIONAL, "c1")  # a cleared verdict: Tunisia is the customer's
    assert state["hc"]["held"] == [] and state["hc"]["calls"] == []
    later = lines_to(TN_FIXED, 2, 1800, DAY_S + 10 * 3600, "c")
    assert [d for c in later for d in det.update(state, c, context)] == []


@pytest.mark.parametrize(
    ("callee", "country", "kw"),
    [
        ("+390612345678", "IT", {}),  # national
        ("+37120123456", "LV", {}),  # +371 is on the list, but national for a Latvian customer
        ("+800 1234 5678", "IT", {}),  # international toll-free
        (ST_MOBILE, "IT", {"allow_destinations": ("+239",)}),
        ("112", "IT", {}),
    ],
)
def test_high_cost_never_counted(callee, country, kw):
    cdrs = [out(i, callee, 3600, 3600.0 + i) for i in range(3)]
    per_cdr, state = run(cdrs, ctx(country=country, **kw))
    assert levels(per_cdr) == [None] * 3 and state["hc"]["calls"] == [] and state["hc"]["first_end_s"] == {}


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
    per_cdr, _ = run(benign_traffic())
    assert all(ds == [] for ds in per_cdr)


def test_state_is_bounded_by_the_window():
    det, context = ArbitrageDetector(), ctx()
    state = det.initial_state()
    for c in sorted(reward_calls(40) + pump(70) + benign_traffic(n=100), key=lambda c: c.end):
        det.update(state, c, context)
    assert state["reward"] and state["pump"]
    det.advance(state, state["last_end_s"] + 3600, context)
    assert state["reward"] == {} and state["pump"] == {} and state["hot"] == []
    det.advance(state, state["last_end_s"] + ArbitrageParams().high_cost_window_s, context)  # its own window
    assert state["hc"]["calls"] == [] and state["hc"]["new_min"] == state["hc"]["cold_min"] == 0.0


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
    with pytest.raises(ValidationError, match=r"high_cost_number_types\.0"):
        ArbitrageParams(high_cost_number_types=["bogus"])
