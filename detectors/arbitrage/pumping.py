"""Arbitrage check (b), inbound traffic pumping: many long inbound calls to one DID from a few caller ranges.

Per DID a group keeps the window's inbound calls with the answered count, the answered
seconds and the calls per origin range (the caller's first ``pumping_prefix_digits``
digits after ``+``), so the test costs O(1) per call.

Group state: ``{"calls": [[end_s, billsec_s, call_id, range], ...], "answered": n,
"billsec": float, "ranges": {range: n}, "ep": str | None}`` (``ep``: ISO time at which
the DID first met the test).

Examples
--------
>>> from detectors.arbitrage.params import ArbitrageParams
>>> from tollguard.testing import make_cdr
>>> groups, p, out = {}, ArbitrageParams(pumping_min_calls=3, pumping_min_acd_s=60), []
>>> for i in range(3):
...     cdr = make_cdr(call_id=f"i{i}", caller=f"+3712600000{i}", start_s=200 * i, end_s=200 * i + 150)
...     out += check(groups, cdr, cdr.end.timestamp(), p)
>>> [(d.level, str(d.scope_kind), d.scope_value, d.evidence["origin_ranges"]) for d in out]
[('warning', 'did', '+390298765432', {'+37126': 3})]
"""

from __future__ import annotations

from typing import Any

from detectors.arbitrage.params import ArbitrageParams
from detectors.base import AlertLevel, Decision, customer_number, iso, level_decision
from detectors.window import Window, entry_cap, sample_ids
from tollguard.cdr import CallDetailRecord
from tollguard.events import ScopeKind

#: The window of one DID's inbound calls.
CALLS = Window(
    "calls",
    sums={"billsec": 1, "answered": lambda c, _g: int(c[1] > 0)},
    counts={"ranges": 3},
)


def check(groups: dict[str, Any], cdr: CallDetailRecord, now_s: float, p: ArbitrageParams) -> list[Decision]:
    """Fold an inbound call into its DID's group of ``groups``; the decision it triggers."""
    did = customer_number(cdr)
    g = groups.get(did)
    if g is None:
        g = groups[did] = {"calls": [], "answered": 0, "billsec": 0.0, "ranges": {}, "ep": None}
    else:
        CALLS.expire(g, now_s=now_s, window_s=p.window_s)
    caller = cdr.caller.strip()
    origin = caller[: p.pumping_prefix_digits + caller.startswith("+")]
    CALLS.add(g, [now_s, cdr.billsec_s, cdr.call_id, origin], max_entries=cap(p))
    n, ranges = len(g["calls"]), g["ranges"]
    acd = g["billsec"] / g["answered"] if g["answered"] else 0.0
    if n < p.pumping_min_calls or len(ranges) > p.pumping_max_origin_ranges or acd < p.pumping_min_acd_s:
        g["ep"] = None
        return []
    if g["ep"] is None:
        g["ep"] = iso(now_s)
    level: AlertLevel = "critical" if n >= p.pumping_critical_calls else "warning"
    shown = ", ".join(sorted(ranges))
    reason = (
        f"DID {did} received {n} inbound calls in the last {p.window_s / 60:.0f} min from only "
        f"{len(ranges)} caller range(s) ({shown}) with a mean answered duration of {acd:.0f} s; the "
        f"{level} threshold is "
        f"{p.pumping_critical_calls if level == 'critical' else p.pumping_min_calls} calls from <= "
        f"{p.pumping_max_origin_ranges} ranges with ACD >= {p.pumping_min_acd_s:g} s (clause 8.2, "
        f"traffic pumping), so DID {did} is {'suspended' if level == 'critical' else 'flagged for review'}."
    )
    evidence: dict[str, Any] = {
        "check": "pumping",
        "did": did,
        "calls": n,
        "answered_calls": g["answered"],
        "acd_s": round(acd, 3),
        "origin_ranges": dict(sorted(ranges.items())),
        "window_s": p.window_s,
        "thresholds": {
            "pumping_min_calls": p.pumping_min_calls,
            "pumping_critical_calls": p.pumping_critical_calls,
            "pumping_max_origin_ranges": p.pumping_max_origin_ranges,
            "pumping_prefix_digits": p.pumping_prefix_digits,
            "pumping_min_acd_s": p.pumping_min_acd_s,
        },
        "sample_call_ids": sample_ids(g["calls"], p.sample_call_ids, 2),
    }
    if CALLS.capped(g):
        evidence["capped_calls"] = CALLS.capped(g)
    decision = level_decision(
        level, ScopeKind.DID, did, episode=g["ep"], occurred_at_s=now_s, reason=reason, evidence=evidence
    )
    return [decision]


def cap(p: ArbitrageParams) -> int:
    """Calls one DID's window keeps at most (never below the critical count)."""
    return entry_cap(p.pumping_critical_calls)
