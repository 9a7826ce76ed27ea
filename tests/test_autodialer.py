"""autodialer: attempt rate + five dialer signs per CLI, Wangiri one-ring calls, clause 8.2."""

from __future__ import annotations

import math
import random

import pytest

from detectors.autodialer import AutodialerDetector, AutodialerParams
from detectors.base import CustomerContext, iso
from tollguard.cdr import Direction, Disposition
from tollguard.events import EventType, ScopeKind
from tollguard.testing import BASE_TIME, make_cdr

CLI = "+390299990000"
T0 = BASE_TIME.timestamp()


def ctx(**params) -> CustomerContext:
    return CustomerContext(
        "c1", country="IT", params={"autodialer": AutodialerParams(**params)}, link_kbps=None
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
    ("n", "expected"),
    [
        (49, []),  # 9.8 attempts/min: below the warning rate
        (50, [("autodialer", EventType.ALERT, "warning")]),  # exactly 10/min: inclusive
        (99, [("autodialer", EventType.ALERT, "warning")]),  # 19.8/min
        (100, [("autodialer", EventType.ALERT, "warning"), ("autodialer", EventType.SUSPENSION, "critical")]),
    ],
)
def test_rate_thresholds_inclusive(n, expected):
    assert kinds(run(sweep(n))[0]) == expected


@pytest.mark.parametrize(("n", "fires"), [(29, False), (30, True)])
def test_min_attempts_inclusive(n, fires):
    decisions, _ = run(sweep(n), ctx(warn_attempts_per_min=1))
    assert bool(decisions) is fires
    if fires:
        assert decisions[0].evidence["attempts"] == 30
        assert decisions[0].evidence["attempts_per_min"] == 6.0


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
    assert ev["signs"] == ["distinct", "regular_gaps"] and ev["score"] == 2
    # answered calls are released when they end, so the window's ASR lags the dialled 0.6 a little
    assert ev["asr"] == 0.5862 and ev["answered"] == 68 and ev["acd_s"] == 150.0


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
    metrics = AutodialerDetector._metrics(entry, AutodialerParams())
    assert sum(metrics["signs"].values()) <= 1  # only "distinct" may hold


def test_sequential_sweep_is_suspended_with_evidence():
    # 24 attempts/min over +390212340000.. (every 10th answered for 12 s)
    cdrs = sweep(140, step_s=2.5, answer_every=10)
    decisions, _ = run(cdrs)
    assert kinds(decisions) == [
        ("autodialer", EventType.ALERT, "warning"),
        ("autodialer", EventType.SUSPENSION, "critical"),
    ]
    sus = decisions[1]
    assert (sus.scope_kind, sus.scope_value, sus.clause) == (ScopeKind.CLI, CLI, "8.2")
    # the 100th attempt (index 99, start 247.5 s) crossed 20/min
    assert sus.episode == f"autodialer@{iso(T0 + 247.5)}"
    assert sus.occurred_at_s == T0 + 247.5 + 20
    ev = sus.evidence
    assert ev["attempts"] == 100
    assert ev["attempts_per_min"] == 20.0
    assert ev["distinct_share"] == 1.0
    assert ev["sequential_share"] == 1.0
    assert ev["asr"] == 0.1 and ev["answered"] == 10
    assert ev["acd_s"] == 12.0
    assert ev["gap_cv"] == 0.0
    assert ev["signs"] == ["distinct", "sequential", "low_asr", "short_acd", "regular_gaps"]
    assert ev["score"] == 5
    assert ev["thresholds"]["critical_attempts_per_min"] == 20 and ev["thresholds"]["critical_signs"] == 3
    assert ev["sample_call_ids"] == [f"a{i:04d}" for i in range(90, 100)]
    assert "20/min" in sus.reason and CLI in sus.reason and "clause 8.2" in sus.reason


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
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
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
    sus = [d for d in decisions if d.type is EventType.SUSPENSION and d.evidence["kind"] == "wangiri"][0]
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


def test_one_decision_per_episode_and_new_episode_after_a_pause():
    first = sweep(120)
    later = [
        c.model_copy(
            update={
                "call_id": "L" + c.call_id,
                "start": c.start.replace(hour=10),
                "end": c.end.replace(hour=10),
            }
        )
        for c in sweep(120)
    ]
    decisions, _ = run(first + later)
    sus = [d for d in decisions if d.type is EventType.SUSPENSION]
    assert len(sus) == 2 and sus[0].episode != sus[1].episode


def test_clis_are_separate_and_idle_ones_are_dropped():
    a = sweep(60)
    b = [
        c.model_copy(update={"did": "+390288880000", "caller": "+390288880000", "call_id": "b" + c.call_id})
        for c in sweep(60)
    ]
    decisions, state = run(a + b)
    assert sorted(d.scope_value for d in decisions) == ["+390288880000", CLI]
    det = AutodialerDetector()
    assert det.advance(state, T0 + 59 * 3 + 299, ctx()) == []  # newest start 177 s: still in a window
    assert set(state["clis"]) == {CLI, "+390288880000"}
    det.advance(state, T0 + 59 * 3 + 300, ctx())
    assert state == {"clis": {}, "due_s": None}


def test_reset_forgets_the_cli():
    det, context = AutodialerDetector(), ctx()
    state = det.initial_state()
    for c in sweep(100):
        det.update(state, c, context)
    det.reset(state, ScopeKind.CLI, CLI)
    assert CLI not in state["clis"]
