"""Arbitrage check (b), inbound traffic pumping: long inbound calls to one DID concentrated on a few caller ranges.

Pumping (access stimulation, revenue-share inbound) sends a generated flow of long calls to
one DID from a handful of origin ranges (a few SIM banks or number blocks); honest callers
of a DID are the public, spread over many ranges. The check therefore asks whether the
DID's inbound traffic is **concentrated**, not whether it comes from few ranges at all
(a busy DID's own callers add ranges to any attack):

* the calls from the DID's top ``pumping_max_origin_ranges`` origin ranges (the caller's
  first ``pumping_prefix_digits`` digits after ``+``) in the window;
* they carry at least ``pumping_min_top_share`` of the DID's calls;
* they are at least ``pumping_baseline_factor`` times the DID's usual calls in a window
  (an EWMA of its inbound calls per closed UTC hour with calls, so nights do not pull it
  down; ``pumping_baseline_calls`` an hour before any such hour closed), so a DID whose
  callers are naturally few does not fire at its usual volume;
* their mean answered duration is at least ``pumping_min_acd_s``.

Those calls against ``pumping_min_calls`` → alert and ``pumping_critical_calls`` →
suspension of the DID (scope ``did``). The evidence prices the answered calls from the top
ranges by their origin with the rules' rate table (the operator's termination exposure:
the per-minute rate of the route the calls come from), and says so; ``estimated_cost`` is
None, with a note, when the table prices none of the origins.

Per DID a group keeps the window's inbound calls with the answered count and seconds and
the calls per origin range; the top ranges cost O(ranges) per call and the window is read
only when the counts already reach the alert level.

Group state: ``{"calls": [[end_s, billsec_s, call_id, range, cost | None], ...], "answered": n,
"billsec": float, "ranges": {range: n}, "ep": str | None}`` (``ep``: ISO time at which
the DID first met the test; ``cost``: the call priced by its origin, None when not
priced). Usual load: ``state["pump_base"] = {did: [EWMA calls/h | None, open UTC hour, calls in it]}``.

Examples
--------
Twenty-four 5-minute calls in an hour from a Latvian and a Sierra Leone mobile range to a
DID that also gets six ordinary Italian calls: an alert from 18 calls of the top ranges, a
suspension from 24; the example rate table prices the origins +371 (EUR 0.30 a minute) and
+232 (EUR 0.90), not the Italian caller's range that the top three include.

>>> from detectors.arbitrage.params import ArbitrageParams
>>> from tollguard.context import CustomerContext
>>> from tollguard.rates import RateTable
>>> from tollguard.testing import make_cdr
>>> state, p, ctx, out = {"pump": {}, "pump_base": {}}, ArbitrageParams(), CustomerContext("c1", rates=RateTable()), []
>>> for i in range(30):
...     caller = ["+3712600000", "+3712611111", "+2327600000", "+2327611111", f"+39{340 + i}0000"][i % 5] + "1"
...     cdr = make_cdr(call_id=f"i{i}", caller=caller, start_s=120 * i, end_s=120 * i + 300)
...     out += check(state, cdr, cdr.end.timestamp(), ctx, p)
>>> [(d.level, d.evidence["top_range_calls"], d.evidence["estimated_cost"]) for d in out][::7]
[('warning', 18, 49.5), ('critical', 24, 67.5)]
>>> out[-1].evidence["origin_ranges"]
{'+37126': 12, '+23276': 12, '+39369': 1}
>>> out[-1].evidence["cost_note"]
'1 of 25 answered calls come from origins the rate table does not price and count nothing'
"""

from __future__ import annotations

import heapq
from typing import Any

from detectors.arbitrage.params import ArbitrageParams
from detectors.base import AlertLevel, CustomerContext, Decision, customer_number, iso, level_decision
from detectors.window import Window, entry_cap
from tollguard.cdr import CallDetailRecord
from tollguard.events import ScopeKind

#: The window of one DID's inbound calls.
CALLS = Window(
    "calls",
    sums={"billsec": 1, "answered": lambda c, _g: int(c[1] > 0)},
    counts={"ranges": 3},
)

#: A DID's usual load is forgotten after this long without a call (event time, s).
BASE_MEMORY_S = 7 * 86_400.0


def origin_range(caller: str, p: ArbitrageParams) -> str:
    """The caller's origin range: ``+`` and its first ``pumping_prefix_digits`` digits."""
    caller = caller.strip()
    return caller[: p.pumping_prefix_digits + caller.startswith("+")]


def usual_calls(bases: dict[str, Any], did: str, now_s: float, p: ArbitrageParams) -> float:
    """The DID's usual inbound calls per hour at ``now_s`` (closes the hours that ended; prior when none)."""
    row = bases.get(did)
    hour = int(now_s // 3600)
    if row is None:
        row = bases[did] = [None, hour, 0]
    elif hour > row[1]:
        if row[2]:  # hours without a call say nothing of the DID's load when it is in use
            a = p.pumping_baseline_alpha
            row[0] = (1 - a) * (p.pumping_baseline_calls if row[0] is None else row[0]) + a * row[2]
        row[1:] = [hour, 0]
    return float(p.pumping_baseline_calls if row[0] is None else row[0])


def forget(bases: dict[str, Any], now_s: float) -> None:
    """Drop the usual load of DIDs without a call for :data:`BASE_MEMORY_S` (bounded state)."""
    old = int((now_s - BASE_MEMORY_S) // 3600)
    for did in [d for d, row in bases.items() if row[1] < old]:
        del bases[did]


def check(
    state: dict[str, Any], cdr: CallDetailRecord, now_s: float, ctx: CustomerContext, p: ArbitrageParams
) -> list[Decision]:
    """Fold an inbound call into its DID's group of ``state["pump"]``; the decision it triggers."""
    groups, bases = state["pump"], state.setdefault("pump_base", {})
    did = customer_number(cdr)
    usual = usual_calls(bases, did, now_s, p)
    bases[did][2] += 1
    g = groups.get(did)
    if g is None:
        g = groups[did] = {"calls": [], "answered": 0, "billsec": 0.0, "ranges": {}, "ep": None}
    else:
        CALLS.expire(g, now_s=now_s, window_s=p.window_s)
    cost = ctx.rates.cost(cdr.caller, cdr.billsec_s) if cdr.caller.startswith("+") else None
    CALLS.add(g, [now_s, cdr.billsec_s, cdr.call_id, origin_range(cdr.caller, p), cost], max_entries=cap(p))
    n = len(g["calls"])
    if n < p.pumping_min_calls:  # the top ranges' calls are a part of the n calls (``ranges`` counts each once)
        g["ep"] = None
        return []
    top = heapq.nlargest(p.pumping_max_origin_ranges, g["ranges"].items(), key=lambda kv: (kv[1], kv[0]))
    top_calls = sum(v for _, v in top)
    usual_window = usual * p.window_s / 3600.0
    if (
        top_calls < p.pumping_min_calls
        or top_calls < p.pumping_min_top_share * n
        or top_calls < p.pumping_baseline_factor * usual_window
    ):
        g["ep"] = None
        return []
    tops = {r for r, _ in top}
    mine = [e for e in g["calls"] if e[3] in tops]
    talk = [e for e in mine if e[1] > 0]
    acd = sum(e[1] for e in talk) / len(talk) if talk else 0.0
    if acd < p.pumping_min_acd_s:
        g["ep"] = None
        return []
    if g["ep"] is None:
        g["ep"] = iso(now_s)
    level: AlertLevel = "critical" if top_calls >= p.pumping_critical_calls else "warning"
    shown = ", ".join(f"{r} {v}" for r, v in top)
    share = top_calls / n
    limit = p.pumping_critical_calls if level == "critical" else p.pumping_min_calls
    reason = (
        f"DID {did} received {top_calls} of its {n} inbound calls in the last {p.window_s / 60:.0f} min "
        f"({share:.0%}) from {len(top)} caller range(s) ({shown}), {top_calls / max(usual_window, 1e-9):.1f}x "
        f"its usual {usual:.1f} calls an hour, with a mean answered duration of {acd:.0f} s; the {level} level "
        f"is {limit} such calls (>= {p.pumping_min_top_share:.0%} of the DID's, >= "
        f"{p.pumping_baseline_factor:g}x its usual, ACD >= {p.pumping_min_acd_s:g} s; clause 8.2, traffic "
        f"pumping), so DID {did} is {'suspended' if level == 'critical' else 'flagged for review'}."
    )
    evidence: dict[str, Any] = {
        "check": "pumping",
        "did": did,
        "calls": n,
        "top_range_calls": top_calls,
        "top_share": round(share, 4),
        "origin_ranges": dict(top),
        "other_ranges": {"ranges": len(g["ranges"]) - len(top), "calls": n - top_calls},
        "answered_calls": len(talk),
        "acd_s": round(acd, 3),
        "minutes": round(sum(e[1] for e in talk) / 60.0, 3),
        "usual_calls_per_hour": round(usual, 4),
        **_cost(talk, ctx),
        "window_s": p.window_s,
        "thresholds": {
            "pumping_min_calls": p.pumping_min_calls,
            "pumping_critical_calls": p.pumping_critical_calls,
            "pumping_max_origin_ranges": p.pumping_max_origin_ranges,
            "pumping_min_top_share": p.pumping_min_top_share,
            "pumping_baseline_factor": p.pumping_baseline_factor,
            "pumping_prefix_digits": p.pumping_prefix_digits,
            "pumping_min_acd_s": p.pumping_min_acd_s,
        },
        "sample_call_ids": [e[2] for e in mine[-p.sample_call_ids:]] if p.sample_call_ids else [],
    }
    if CALLS.capped(g):
        evidence["capped_calls"] = CALLS.capped(g)
    decision = level_decision(
        level, ScopeKind.DID, did, episode=g["ep"], occurred_at_s=now_s, reason=reason, evidence=evidence
    )
    return [decision]


def _cost(talk: list[list[Any]], ctx: CustomerContext) -> dict[str, Any]:
    """The answered top-range calls priced by their origin (rate table), with the basis said."""
    priced = [e[4] for e in talk if len(e) > 4 and e[4] is not None]
    out: dict[str, Any] = {
        "estimated_cost": round(sum(priced), 2) if priced else None,
        "currency": ctx.rates.currency,
        "cost_basis": "origin: the rate table's price of the caller's range (the operator's termination exposure)",
    }
    if len(priced) < len(talk):
        out["cost_note"] = (
            "the rules' rate table prices none of these origins: no estimate (load the carrier's rates)"
            if not priced
            else f"{len(talk) - len(priced)} of {len(talk)} answered calls come from origins the rate table "
            "does not price and count nothing"
        )
    return out


def cap(p: ArbitrageParams) -> int:
    """Calls one DID's window keeps at most (never below the critical count)."""
    return entry_cap(p.pumping_critical_calls)
