"""autodialer: burst and sustained campaigns per CLI (rate over the attempts' span, five signs), Wangiri, 8.2."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from detectors.autodialer import AutodialerDetector, AutodialerParams, measure, rate_per_min
from detectors.base import CustomerContext, iso
from tollguard.cdr import Direction, Disposition
from tollguard.events import EventType, ScopeKind
from tollguard.rates import EXAMPLE_RATES, Rate, RateTable
from tollguard.testing import BASE_TIME, make_cdr

CLI = "+390299990000"
T0 = BASE_TIME.timestamp()


def ctx(rates: RateTable | None = None, **params) -> CustomerContext:
    extra = {} if rates is None else {"rates": rates}
    return CustomerContext(
        "c1", country="IT", params={"autodialer": AutodialerParams(**params)}, link_kbps=None, **extra
    )


def attempt(i, start_s, callee, answered=False, billsec=0.0, ring_s=20.0, disposition=None, cli=CLI, **kw):
    """One outbound attempt from ``cli``; answered calls ring ``ring_s`` then talk ``billsec``."""
    if answered:
        return make_cdr(
            call_id=f"a{i:04d}",
            direction=Direction.OUTBOUND,
            did=cli,
            caller=cli,
            callee=callee,
            start_s=start_s,
            answer_s=start_s + ring_s,
            end_s=start_s + ring_s + billsec,
            **kw,
        )
    return make_cdr(
        call_id=f"a{i:04d}",
        direction=Direction.OUTBOUND,
        did=cli,
        caller=cli,
        callee=callee,
        start_s=start_s,
        end_s=start_s + ring_s,
        disposition=disposition or Disposition.NO_ANSWER,
        **kw,
    )


def sweep(n, step_s=3.0, base=390212340000, answer_every=0, billsec=12.0):
    """A number-block sweep: +390212340000, +390212340001, ... one attempt every ``step_s`` seconds.

    Every ``answer_every``-th attempt is answered for ``billsec`` (rings 8 s, so all calls last 20 s).
    """
    return [
        attempt(
            i,
            i * step_s,
            f"+{base + i}",
            answered=bool(answer_every) and i % answer_every == 0,
            billsec=billsec,
            ring_s=8.0 if answer_every and i % answer_every == 0 else 20.0,
        )
        for i in range(n)
    ]


def run(cdrs, context=None):
    det, context = AutodialerDetector(), context or ctx()
    state = det.initial_state()
    out = []
    for c in sorted(cdrs, key=lambda c: (c.end, c.call_id)):
        out += det.update(state, c, context)
        out += det.advance(state, c.end.timestamp() - 300, context)
    return out, state


def kinds(decisions):
    return [(d.evidence["kind"], d.type, d.level) for d in decisions]


def test_empty_gives_nothing():
    det = AutodialerDetector()
    state = det.initial_state()
    assert det.advance(state, math.inf, ctx()) == []
    assert run([]) == ([], {"clis": {}, "due_s": None})


def test_inbound_and_internal_calls_are_ignored():
    cdrs = [c.model_copy(update={"direction": Direction.INBOUND}) for c in sweep(120)]
    cdrs += [
        c.model_copy(update={"direction": Direction.INTERNAL, "call_id": "i" + c.call_id}) for c in sweep(120)
    ]
    assert run(cdrs)[0] == []


@pytest.mark.parametrize(
    ("step_s", "expected"),
    [
        (6.25, []),  # 9.6 attempts/min: below the warning rate
        (6.0, [("autodialer", EventType.ALERT, "warning")]),  # exactly 10/min: inclusive
        (3.125, [("autodialer", EventType.ALERT, "warning")]),  # 19.2/min
        (3.0, [("autodialer", EventType.SUSPENSION, "critical")]),  # exactly 20/min: at once, no alert first
    ],
)
def test_burst_rate_thresholds_inclusive(step_s, expected):
    # 40 attempts of a sweep (4 signs), all within the 5-minute window and too short for the sustained check
    decisions, _ = run(sweep(40, step_s=step_s))
    assert kinds(decisions) == expected
    for d in decisions:
        assert d.evidence["pace"] == "burst" and d.evidence["attempts"] == 30  # judged from min_attempts on
        assert d.evidence["attempts_per_min"] == round(60 / step_s, 2)


@pytest.mark.parametrize(("n", "fires"), [(29, False), (30, True)])
def test_min_attempts_inclusive(n, fires):
    decisions, _ = run(sweep(n, step_s=9.0), ctx(warn_attempts_per_min=1))
    assert bool(decisions) is fires
    if fires:
        assert decisions[0].evidence["attempts"] == 30
        assert decisions[0].evidence["attempts_per_min"] == 6.67  # 29 gaps of 9 s, not 30 / 5 min


def test_rate_is_measured_over_the_attempts_span_not_the_window():
    # issue 9: a dialer placing 480 attempts/min through a real proxy was reported as "10/min"
    cdrs = sweep(480, step_s=0.125)
    decisions, _ = run(cdrs)
    assert kinds(decisions) == [("autodialer", EventType.SUSPENSION, "critical")]
    ev = decisions[0].evidence
    assert ev["attempts_per_min"] == 480.0 and ev["attempts"] == 30 and ev["pace"] == "burst"
    assert "(480/min, critical at 20/min)" in decisions[0].reason
    assert decisions[0].occurred_at_s == T0 + 29 * 0.125 + 20  # the 30th attempt, 3.6 s into the burst
    assert rate_per_min(480, 0.0, 479 * 0.125) == 480.0


def random_numbers(rng, n):
    return [f"+3906{rng.randrange(10_000_000, 99_999_999)}" for _ in range(n)]


def test_fast_but_only_two_signs_is_warning_not_suspension():
    # 24 attempts/min, regularly paced, varied numbers, but humans answer (ASR 0.6, ACD 150 s)
    rng = random.Random(3)
    numbers = random_numbers(rng, 140)
    cdrs = [
        attempt(i, i * 2.5, numbers[i], answered=i % 5 < 3, billsec=150.0, ring_s=10.0) for i in range(140)
    ]
    decisions, _ = run(cdrs)
    assert kinds(decisions) == [("autodialer", EventType.ALERT, "warning")]
    ev = decisions[0].evidence
    # calls are released when they end: at the 30th released attempt the answered calls (160 s long)
    # are mostly still running, so the window's ASR lags the dialled 0.6 and its gaps are uneven
    assert ev["signs"] == ["distinct", "low_asr"] and ev["score"] == 2
    assert ev["asr"] == 0.1333 and ev["answered"] == 4 and ev["acd_s"] == 150.0 and ev["gap_cv"] == 0.6559
    assert ev["attempts"] == 30 and ev["attempts_per_min"] == 10.88


def test_benign_office_cli_gives_nothing():
    # ~10 calls/min for 30 min, varied numbers, ASR ~0.6, ACD ~150 s, irregular (exponential) gaps
    rng = random.Random(11)
    t, cdrs = 0.0, []
    for i, number in enumerate(random_numbers(rng, 300)):
        t += rng.expovariate(1 / 6.0)
        if rng.random() < 0.6:
            cdrs.append(
                attempt(i, t, number, answered=True, billsec=rng.uniform(60, 240), ring_s=rng.uniform(5, 20))
            )
        else:
            cdrs.append(attempt(i, t, number, ring_s=rng.uniform(10, 40)))
    decisions, state = run(cdrs)
    assert decisions == []
    entry = state["clis"][CLI]
    metrics = measure(entry, AutodialerParams())
    assert sum(metrics["signs"].values()) <= 1  # only "distinct" may hold


def test_sequential_sweep_is_suspended_with_evidence():
    # 24 attempts/min over +390212340000.. (every 10th answered for 12 s)
    cdrs = sweep(140, step_s=2.5, answer_every=10)
    decisions, _ = run(cdrs)
    assert kinds(decisions) == [("autodialer", EventType.SUSPENSION, "critical")]
    sus = decisions[0]
    assert (sus.scope_kind, sus.scope_value, sus.clause) == (ScopeKind.CLI, CLI, "8.2")
    # the 30th attempt (index 29, start 72.5 s) is the first judged: 24/min with five signs
    assert sus.episode == f"autodialer@{iso(T0 + 72.5)}"
    assert sus.occurred_at_s == T0 + 72.5 + 20
    ev = sus.evidence
    assert ev["attempts"] == 30 and ev["pace"] == "burst"
    assert ev["attempts_per_min"] == 24.0
    assert ev["distinct_share"] == 1.0
    assert ev["sequential_share"] == 1.0
    assert ev["asr"] == 0.1 and ev["answered"] == 3
    assert ev["acd_s"] == 12.0
    assert ev["gap_cv"] == 0.0
    assert ev["signs"] == ["distinct", "sequential", "low_asr", "short_acd", "regular_gaps"]
    assert ev["score"] == 5
    assert ev["thresholds"]["critical_attempts_per_min"] == 20 and ev["thresholds"]["critical_signs"] == 3
    assert ev["sample_call_ids"] == [f"a{i:04d}" for i in range(20, 30)]
    assert ev["estimated_cost"] is None and ev["currency"] == "EUR"  # national numbers: not in the rate table
    assert ev["campaign"] == {
        "first_start": iso(T0), "last_start": iso(T0 + 72.5), "duration_s": 72.5, "attempts": 30,
        "attempts_per_min": 24.0, "answered": 3, "one_ring_calls": 0, "international_share": 0.0,
        "distinct_share": 1.0, "sequential_share": 0.9667, "asr": 0.1, "acd_s": 12.0, "regular_share": 0.9333,
        "signs": ["distinct", "sequential", "low_asr", "short_acd", "regular_gaps"], "estimated_cost": None,
    }
    assert sus.reason == (
        f"CLI {CLI} placed 30 call attempts in 1.2 min (24/min, critical at 20/min) with 5 of 5 autodialer "
        "signs (100% distinct destinations, 100% sequential numbers, ASR 10%, ACD 12 s, gap CV 0.00): an "
        "automatically generated outbound campaign (clause 8.2)."
    )


def test_sequential_share_counts_block_neighbours_only():
    # 60 attempts, regular, ASR 0: half the callees are a block (step 7 apart), half random far apart
    rng = random.Random(5)
    far = random_numbers(rng, 30)
    numbers = [
        n for pair in zip([f"+39021234{7 * i:04d}" for i in range(30)], far, strict=True) for n in pair
    ]
    _, state = run([attempt(i, i * 4.0, numbers[i]) for i in range(60)])
    assert state["clis"][CLI]["seq"] == 30
    _, state = run([attempt(i, i * 4.0, numbers[i]) for i in range(60)], ctx(sequential_max_step=6))
    assert state["clis"][CLI]["seq"] == 0


def brute(entry, p):
    att = entry["att"]
    keys = [a[1] for a in att]
    present = set(keys)
    seq = sum(
        1
        for k in keys
        if k.isdigit()
        and any(
            str(int(k) + d).zfill(len(k)) in present
            for d in range(-p.sequential_max_step, p.sequential_max_step + 1)
            if d
        )
    )
    starts = [a[0] for a in att]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    return {
        "n": len(att),
        "distinct": len(present),
        "seq": seq,
        "ans": sum(a[2] for a in att),
        "ring1": sum(a[4] for a in att),
        "sq": sum(g * g for g in gaps),
        "bill": sum(a[3] for a in att),
    }


def test_running_sums_match_recomputation_with_out_of_order_starts():
    rng = random.Random(42)
    p = AutodialerParams(window_s=120)
    det, context = AutodialerDetector(), ctx(window_s=120)
    cdrs = []
    for i in range(400):
        start = i * 1.7 + rng.uniform(0, 30)
        callee = f"+3902555{rng.randrange(0, 300):04d}"
        if rng.random() < 0.3:
            cdrs.append(attempt(i, start, callee, answered=True, billsec=rng.uniform(1, 90), ring_s=3))
        else:
            cdrs.append(attempt(i, start, callee, ring_s=rng.choice([1.0, 2.5, 4.0, 25.0])))
    state = det.initial_state()
    for c in sorted(cdrs, key=lambda c: (c.end, c.call_id)):
        det.update(state, c, context)
        entry = state["clis"][CLI]
        b = brute(entry, p)
        assert [a[0] for a in entry["att"]] == sorted(a[0] for a in entry["att"])
        assert entry["att"][-1][0] - entry["att"][0][0] < p.window_s
        assert (len(entry["att"]), len(entry["dst"]), entry["seq"], entry["ans"], entry["ring1"]) == (
            b["n"],
            b["distinct"],
            b["seq"],
            b["ans"],
            b["ring1"],
        )
        assert entry["sq"] == pytest.approx(b["sq"], rel=1e-9, abs=1e-6)
        assert entry["bill"] == pytest.approx(b["bill"], rel=1e-9, abs=1e-6)


def one_ring(i, start_s, ring_s=2.0, disposition=Disposition.NO_ANSWER):
    rng = random.Random(i)
    return attempt(
        i, start_s, f"+4420{rng.randrange(10_000_000, 99_999_999)}", ring_s=ring_s, disposition=disposition
    )


def wangiri(decisions):
    return [(d.type, d.level) for d in decisions if d.evidence["kind"] == "wangiri"]


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        (29, []),
        (30, [(EventType.ALERT, "warning")]),  # inclusive
        (59, [(EventType.ALERT, "warning")]),
        (60, [(EventType.ALERT, "warning"), (EventType.SUSPENSION, "critical")]),
    ],
)
def test_wangiri_thresholds(calls, expected):
    # irregular gaps so the dialer rule does not decide the rows on its own
    rng = random.Random(calls)
    starts = sorted(rng.uniform(0, 290) for _ in range(calls))
    decisions, _ = run([one_ring(i, s) for i, s in enumerate(starts)])
    assert wangiri(decisions) == expected
    for d in decisions:
        assert (d.scope_kind, d.scope_value, d.clause) == (ScopeKind.CLI, CLI, "8.2")


def test_wangiri_suspension_needs_the_one_ring_share():
    rng = random.Random(9)
    starts = sorted(rng.uniform(0, 290) for _ in range(100))
    rings = [one_ring(i, s) for i, s in enumerate(starts)]
    # answered calls that all end (by 235 s) before the last one-ring call is released
    normal = [
        attempt(500 + i, 20.0 * i, f"+39061111{i:04d}", answered=True, billsec=10, ring_s=5)
        for i in range(12)
    ]
    assert max(c.end for c in normal) < max(c.end for c in rings)
    strict = ctx(wangiri_critical_calls=100)
    decisions, _ = run(rings + normal, strict)  # 100 of 112 = 0.89 < 0.9
    assert wangiri(decisions) == [(EventType.ALERT, "warning")]
    decisions, _ = run(rings + normal[:11], strict)  # 100 of 111 = 0.90
    assert wangiri(decisions) == [(EventType.ALERT, "warning"), (EventType.SUSPENSION, "critical")]
    sus = next(d for d in decisions if d.type is EventType.SUSPENSION and d.evidence["kind"] == "wangiri")
    assert sus.evidence["one_ring_calls"] == 100 and sus.evidence["one_ring_share"] == 0.9009


@pytest.mark.parametrize(
    ("ring_s", "disposition", "counted"),
    [
        (3.0, Disposition.NO_ANSWER, True),  # exactly one_ring_max_s: inclusive
        (3.5, Disposition.NO_ANSWER, False),
        (1.0, Disposition.BUSY, False),  # busy / failed never rang
        (0.0, Disposition.FAILED, False),
    ],
)
def test_one_ring_definition(ring_s, disposition, counted):
    _, state = run([one_ring(0, 0.0, ring_s=ring_s, disposition=disposition)])
    assert state["clis"][CLI]["ring1"] == int(counted)


def later(cdrs, hour):
    return [
        c.model_copy(update={"call_id": f"L{hour}" + c.call_id, "start": c.start.replace(hour=hour),
                             "end": c.end.replace(hour=hour)})
        for c in cdrs
    ]


@pytest.mark.parametrize(("hour", "suspensions"), [(10, 1), (11, 2)])
def test_one_decision_per_episode_and_new_episode_after_a_pause(hour, suspensions):
    # the same 20/min sweep at 09:00 and again at 10:00 / 11:00: the first (09:00-09:06) is still in the
    # hour-long campaign window at 10:00, so the episode goes on; by 11:00 it has left, a new episode begins
    decisions, _ = run(sweep(120) + later(sweep(120), hour))
    sus = [d for d in decisions if d.type is EventType.SUSPENSION]
    assert len(sus) == suspensions == len(decisions)
    assert len({d.episode for d in sus}) == suspensions


def test_clis_are_separate_and_idle_ones_are_dropped():
    a = sweep(60)
    b = [
        c.model_copy(update={"did": "+390288880000", "caller": "+390288880000", "call_id": "b" + c.call_id})
        for c in sweep(60)
    ]
    decisions, state = run(a + b)
    assert sorted(d.scope_value for d in decisions) == ["+390288880000", CLI]
    det = AutodialerDetector()
    newest = T0 + 59 * 3  # newest start 177 s: the CLIs stay while it is in the hour-long campaign window
    assert det.advance(state, newest + 3599, ctx()) == []
    assert set(state["clis"]) == {CLI, "+390288880000"}
    det.advance(state, newest + 3600, ctx())
    assert state == {"clis": {}, "due_s": None}


def test_reset_forgets_the_cli():
    det, context = AutodialerDetector(), ctx()
    state = det.initial_state()
    for c in sweep(100):
        det.update(state, c, context)
    det.reset(state, ScopeKind.CLI, CLI)
    assert CLI not in state["clis"]


# ---------------------------------------------------------------------------------------- campaigns


def campaign(per_min, minutes, *, seed=1, asr=0.2, talk=(5.0, 40.0), pacing="poisson", numbers=None, cli=CLI,
             prefix="c"):
    """A CLI dialling for ``minutes`` at ``per_min`` attempts/min (Poisson or regular gaps) from ``numbers``.

    Answered attempts ring 5 s and talk U(talk); the others ring U(10 s, 20 s) unanswered.
    """
    rng = random.Random(seed)
    numbers = numbers or (lambda i: f"+3906{rng.randrange(10_000_000, 99_999_999)}")
    cdrs, t, i = [], 0.0, 0
    while t < minutes * 60:
        if rng.random() < asr:
            cdr = attempt(i, t, numbers(i), answered=True, billsec=rng.uniform(*talk), ring_s=5.0, cli=cli)
        else:
            cdr = attempt(i, t, numbers(i), ring_s=rng.uniform(10.0, 20.0), cli=cli)
        cdrs.append(cdr.model_copy(update={"call_id": f"{prefix}{i:05d}"}))
        t += rng.expovariate(per_min / 60) if pacing == "poisson" else 60 / per_min
        i += 1
    return cdrs


def released(cdrs):
    return sorted(cdrs, key=lambda c: (c.end, c.call_id))


def first_release_spanning(cdrs, span_s, n=1):
    """The first CDR, in release (end) order, after which ``n`` or more released attempts span ``span_s``."""
    starts = []
    for c in released(cdrs):
        starts.append(c.start.timestamp())
        if len(starts) >= n and max(starts) - min(starts) >= span_s:
            return c
    raise AssertionError("never spans")


def paced(decisions):
    return [(d.evidence["kind"], d.evidence["pace"], d.type, d.level) for d in decisions]


def test_a_steady_dialer_at_about_12_per_minute_for_two_hours_is_suspended():
    # issue 9: a moderate, steady campaign (random list, Poisson pacing, ASR 0.2, short calls) for over two
    # hours got one alert and never a suspension: its window rate never reached the burst level of 20/min
    cdrs = campaign(12, 120)
    decisions, _ = run(cdrs)
    assert paced(decisions) == [
        ("autodialer", "burst", EventType.ALERT, "warning"),
        ("autodialer", "sustained", EventType.SUSPENSION, "critical"),
    ]
    sus = decisions[1]
    assert (sus.scope_kind, sus.scope_value) == (ScopeKind.CLI, CLI)
    crossing = first_release_spanning(cdrs, 1200)  # 20 minutes of campaign: sustained_critical_s
    assert sus.occurred_at_s == crossing.end.timestamp()
    camp = sus.evidence["campaign"]
    assert camp["duration_s"] >= 1200 and camp["first_start"] == iso(T0)
    assert camp["attempts"] == sus.evidence["attempts"] == len([c for c in cdrs if c.end <= crossing.end])
    assert 11 <= camp["attempts_per_min"] <= 13
    assert sus.evidence["signs"] == camp["signs"] == ["distinct", "low_asr", "short_acd"]
    assert sus.evidence["window_s"] == 3600
    assert f"CLI {CLI} has run a campaign for 20 min" in sus.reason and "clause 8.2" in sus.reason


@pytest.mark.parametrize(
    ("per_min", "expected"),
    [
        (12, [("burst", EventType.ALERT), ("sustained", EventType.SUSPENSION)]),
        (6, [("sustained", EventType.ALERT), ("sustained", EventType.SUSPENSION)]),  # half the pace
        (3, [("sustained", EventType.ALERT), ("sustained", EventType.SUSPENSION)]),  # a quarter
        (1.5, []),  # below sustained_attempts_per_min (2): slower than one attempt every 30 s
    ],
)
def test_a_slower_campaign_is_still_suspended_after_20_minutes(per_min, expected):
    cdrs = campaign(per_min, 120, seed=7)
    decisions, _ = run(cdrs)
    assert [(d.evidence["pace"], d.type) for d in decisions] == expected
    for d in decisions:
        if d.evidence["pace"] == "sustained":
            span = 600 if d.type is EventType.ALERT else 1200
            assert d.occurred_at_s == first_release_spanning(cdrs, span).end.timestamp()


def test_thresholds_of_the_sustained_check_are_inclusive():
    # exactly 2 attempts/min, regular gaps: 41 attempts span exactly 1200 s
    cdrs = campaign(2, 20.5, pacing="regular", asr=0.0)
    assert len(cdrs) == 41
    decisions, _ = run(cdrs)
    assert [(d.evidence["pace"], d.type) for d in decisions] == [
        ("sustained", EventType.ALERT), ("sustained", EventType.SUSPENSION)]
    assert decisions[1].evidence["campaign"]["duration_s"] == 1200.0
    assert decisions[1].evidence["attempts_per_min"] == 2.0
    assert run(cdrs[:-1])[0][-1].type is EventType.ALERT  # 1170 s: not yet
    slower = [c.model_copy(update={"start": c.start + (c.start - BASE_TIME) * 0.01,
                                   "end": c.end + (c.start - BASE_TIME) * 0.01}) for c in cdrs]
    assert run(slower)[0] == []  # 1.98/min


@pytest.mark.parametrize(
    ("name", "cdrs"),
    [
        # a busy office: 4 calls/min for two hours, people answer (ASR 0.6) and talk (1-5 min)
        ("office", campaign(4, 120, seed=3, asr=0.6, talk=(60.0, 300.0))),
        # a taxi firm calling customers back: short calls, but they answer (2 signs: distinct, short ACD)
        ("short_calls", campaign(3, 120, seed=4, asr=0.8, talk=(15.0, 40.0))),
        # alarm panels: test calls every 30 s to two receivers in one block (sequential, short, regular),
        # but to two numbers only: a campaign calls many numbers
        ("alarm_panels", campaign(2, 120, seed=5, asr=1.0, talk=(10.0, 14.0), pacing="regular",
                                  numbers=lambda i: f"+39021234560{i % 2}")),
        # a firm calling 40 countries all day
        ("many_countries", campaign(2, 120, seed=6, asr=0.6, talk=(90.0, 400.0),
                                    numbers=lambda i: f"+{[44, 49, 33, 34, 1, 81, 61][i % 7]}20{i:07d}")),
    ],
)
def test_honest_traffic_over_two_hours_stays_silent(name, cdrs):
    decisions, _ = run(cdrs)
    assert decisions == []


# ---------------------------------------------------------------------------------------- never evidence


@pytest.mark.parametrize(
    ("numbers", "kw"),
    [
        (lambda i: "112", {}),  # emergency (IT)
        (lambda i: ["112", "113", "115", "118"][i % 4], {}),
        (lambda i: f"+39800{120000 + i:06d}", {}),  # a sweep of toll-free numbers
        (lambda i: f"+3902123{4000 + i:04d}", {"allow_destinations": ("+3902123",)}),  # allowlisted prefix
    ],
)
def test_emergency_toll_free_and_allowlisted_calls_are_never_attempts(numbers, kw):
    cdrs = campaign(480, 2, asr=0.0, pacing="regular", numbers=numbers)
    context = CustomerContext("c1", country="IT", params={"autodialer": AutodialerParams()}, **kw)
    decisions, state = run(cdrs, context)
    assert decisions == [] and state == {"clis": {}, "due_s": None}


def test_emergency_calls_among_a_dialers_attempts_change_nothing():
    dialer = sweep(140, step_s=2.5, answer_every=10)
    emergency = [attempt(1000 + i, i * 2.5 + 1.0, "112", answered=True, billsec=12.0, ring_s=8.0)
                 for i in range(140)]
    toll_free = [attempt(2000 + i, i * 2.5 + 2.0, f"+39800{130000 + i:06d}") for i in range(140)]
    alone, _ = run(dialer)
    mixed, state = run(dialer + emergency + toll_free)
    assert [(d.type, d.evidence) for d in mixed] == [(d.type, d.evidence) for d in alone]
    assert {a[5][0] for a in state["clis"][CLI]["camp"]} == {"a"}  # only the dialer's own attempts


# ---------------------------------------------------------------------------------------- slow Wangiri


def wangiri_calls(per_min, minutes, seed=2):
    """One-ring calls (1-2.5 s, unanswered) to random GB / DE / FR mobiles, Poisson gaps."""
    rng = random.Random(seed)
    cdrs, t, i = [], 0.0, 0
    while t < minutes * 60:
        number = rng.choice(["+4477009", "+491512", "+33612"]) + f"{rng.randrange(100_000, 999_999)}"
        cdrs.append(attempt(i, t, number, ring_s=rng.uniform(1.0, 2.5)))
        t += rng.expovariate(per_min / 60)
        i += 1
    return cdrs


@pytest.mark.parametrize(
    ("per_min", "minutes", "expected"),
    [
        # 30 one-ring calls in 5 min: the burst alert first; the dialer's burst check alerts too (10/min,
        # two signs: distinct numbers, no answer)
        (8, 12, [("wangiri", "burst", EventType.ALERT), ("autodialer", "burst", EventType.ALERT),
                 ("wangiri", "sustained", EventType.SUSPENSION)]),
        # issue 9: 4-8 one-ring calls/min got an alert at most, 3/min and less nothing
        (4, 12, [("wangiri", "sustained", EventType.SUSPENSION)]),
        (3, 15, [("wangiri", "sustained", EventType.SUSPENSION)]),
        (1.5, 20, [("wangiri", "sustained", EventType.SUSPENSION)]),  # half that pace
        (4, 8, []),  # held for less than 10 minutes (wangiri_sustained_s)
    ],
)
def test_slow_wangiri_held_over_ten_minutes_is_suspended(per_min, minutes, expected):
    cdrs = wangiri_calls(per_min, minutes)
    decisions, _ = run(cdrs)
    assert [(d.evidence["kind"], d.evidence["pace"], d.type) for d in decisions] == expected
    for d in decisions:
        if d.evidence["pace"] == "sustained":
            assert d.occurred_at_s == first_release_spanning(cdrs, 600, n=15).end.timestamp()
            camp = d.evidence["campaign"]
            assert camp["one_ring_calls"] == d.evidence["one_ring_calls"] >= 15
            assert camp["international_share"] == 1.0 and camp["distinct_share"] == 1.0
            assert camp["duration_s"] >= 600


def test_slow_one_ring_calls_to_a_few_numbers_are_not_wangiri():
    # the same number rung again and again (a PBX's failed forwarding, say): no sweep over many numbers
    cdrs = [c.model_copy(update={"callee": f"+4477009{100_000 + i % 3}"}) for i, c in
            enumerate(wangiri_calls(3, 30))]
    assert run(cdrs)[0] == []


# ---------------------------------------------------------------------------------------- money


def test_evidence_prices_the_attempts_with_the_rate_table():
    rates = RateTable(currency="USD", prefixes={"+390212": Rate(per_min=0.6, per_call=0.1)})
    decisions, _ = run(sweep(140, step_s=2.5, answer_every=10), ctx(rates=rates))
    ev = decisions[0].evidence
    # 3 answered 12 s calls of the 30 attempts: 3 x (0.10 + 0.60 x 0.2); unanswered calls cost nothing
    assert (ev["estimated_cost"], ev["currency"], ev["campaign"]["estimated_cost"]) == (0.66, "USD", 0.66)
    unpriced = run(sweep(140, step_s=2.5, answer_every=10), ctx(rates=RateTable(prefixes=dict(EXAMPLE_RATES))))
    assert unpriced[0][0].evidence["estimated_cost"] is None and unpriced[0][0].evidence["currency"] == "EUR"


def test_a_cli_state_written_before_the_campaign_window_is_started_afresh():
    det, context = AutodialerDetector(), ctx()
    old = {"att": [[T0, "390212340000", 0, 0.0, 0, "x"]], "newest_s": T0, "ans": 0, "bill": 0.0, "ring1": 0,
           "sq": 0.0, "dst": {"390212340000": [1, 0]}, "seq": 0, "ep": {"dialer": None, "wangiri": None}}
    state = {"clis": {CLI: old}, "due_s": T0 + 300}
    for c in sweep(40):
        det.update(state, c, context)
    assert len(state["clis"][CLI]["att"]) == len(state["clis"][CLI]["camp"]) == 40
