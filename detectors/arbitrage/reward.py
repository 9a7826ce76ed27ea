"""Arbitrage check (a), reward / auto top-up: many answered calls of near-constant length to a few numbers.

Per destination number a group keeps the window's answered calls with running sums of
``billsec - k`` and its square (``k``: the group's first billsec, a shift that keeps the
variance numerically stable), so the coefficient of variation costs O(1) per call.
``state["hot"]`` lists the numbers that met the test when last seen: a qualifying number
joins the hot ones into a cluster, and the cluster (its size, its CLIs) sets the scope.

Group state: ``{"calls": [[end_s, billsec_s, call_id, cli], ...], "k": float, "s1": float,
"s2": float, "clis": {cli: n}, "ep": str | None}`` (``ep``: ISO time at which the group
first met the test).

Examples
--------
>>> from detectors.arbitrage.params import ArbitrageParams
>>> from detectors.base import CustomerContext
>>> from tollguard.testing import make_cdr
>>> ctx, state = CustomerContext("c1"), {"reward": {}, "hot": []}
>>> out = []
>>> for i in range(3):
...     cdr = make_cdr(call_id=f"r{i}", direction="outbound", callee="+393331234567", start_s=100 * i,
...                    end_s=100 * i + 45)
...     out += check(state, cdr, "+393331234567", cdr.end.timestamp(), ctx, ArbitrageParams(reward_min_calls=3))
>>> [(d.level, d.check, d.evidence["calls"], d.evidence["cv"]) for d in out]
[('warning', 'reward', 3, 0.0)]
"""

from __future__ import annotations

import math
from typing import Any

from detectors.arbitrage.params import ArbitrageParams
from detectors.base import AlertLevel, CustomerContext, Decision, customer_number, iso, level_decision
from detectors.window import Window, entry_cap, sample_ids
from tollguard.cdr import CallDetailRecord
from tollguard.events import ScopeKind

#: The window of one destination number's answered calls.
CALLS = Window(
    "calls",
    sums={"s1": lambda c, g: c[1] - g["k"], "s2": lambda c, g: (c[1] - g["k"]) * (c[1] - g["k"])},
    counts={"clis": 3},
)


def cv(g: dict[str, Any]) -> tuple[float, float]:
    """Mean billsec (s) and coefficient of variation of a non-empty group (inf for a zero mean)."""
    n = len(g["calls"])
    d1 = g["s1"] / n
    mean = g["k"] + d1
    var = max(g["s2"] / n - d1 * d1, 0.0)
    return mean, (math.sqrt(var) / mean if mean > 0 else math.inf)


def qualifies(g: dict[str, Any], p: ArbitrageParams) -> bool:
    """The group holds ``reward_min_calls`` calls of CV ``<= reward_max_duration_cv``."""
    return len(g["calls"]) >= p.reward_min_calls and cv(g)[1] <= p.reward_max_duration_cv


def check(
    state: dict[str, Any], cdr: CallDetailRecord, dest: str, now_s: float, ctx: CustomerContext, p: ArbitrageParams
) -> list[Decision]:
    """Fold an answered outbound call to ``dest`` into ``state["reward"]``; the decision it triggers."""
    groups = state["reward"]
    g = groups.get(dest)
    if g is None:
        g = groups[dest] = {"calls": [], "k": cdr.billsec_s, "s1": 0.0, "s2": 0.0, "clis": {}, "ep": None}
    else:
        CALLS.expire(g, now_s=now_s, window_s=p.window_s)
    CALLS.add(g, [now_s, cdr.billsec_s, cdr.call_id, customer_number(cdr)], max_entries=cap(p))
    if not qualifies(g, p):
        g["ep"] = None
        if dest in state["hot"]:
            state["hot"].remove(dest)
        return []
    if g["ep"] is None:
        g["ep"] = iso(now_s)
    cluster = [dest]
    for other in state["hot"]:
        og = groups.get(other)
        if other != dest and og is not None:
            CALLS.expire(og, now_s=now_s, window_s=p.window_s)
            if og["calls"] and qualifies(og, p):
                cluster.append(other)
    state["hot"] = sorted(cluster)
    clis = sorted({c for d in cluster for c in groups[d]["clis"]})
    counts = {d: len(groups[d]["calls"]) for d in sorted(cluster)}
    if len(cluster) > p.reward_max_destinations:
        kind, value = (ScopeKind.CLI, clis[0]) if len(clis) == 1 else (ScopeKind.ACCOUNT, ctx.customer_id)
        n_max = max(counts.values())
    elif len(cluster) > 1 and len(clis) == 1:
        kind, value, n_max = ScopeKind.CLI, clis[0], max(counts.values())
    else:
        kind, value, n_max = ScopeKind.DESTINATION_PREFIX, dest, counts[dest]
    level: AlertLevel = "critical" if n_max >= p.reward_critical_calls else "warning"
    mean, dest_cv = cv(g)
    episode = dest_ep = g["ep"]
    if kind is not ScopeKind.DESTINATION_PREFIX:
        episode = min(groups[d]["ep"] or dest_ep for d in cluster)
    limit = p.reward_critical_calls if level == "critical" else p.reward_min_calls
    reason = (
        f"Customer {ctx.customer_id} made {counts[dest]} answered calls of near-constant length (mean "
        f"{mean:.1f} s, CV {dest_cv:.3f}) to {dest} in the last {p.window_s / 60:.0f} min "
        f"({len(cluster)} such number(s) from {len(clis)} CLI(s)); the {level} threshold "
        f"is {limit} calls with CV <= {p.reward_max_duration_cv:g} (clause 8.2, reward/auto top-up), so "
        f"{kind} {value} is {'suspended' if level == 'critical' else 'flagged for review'}."
    )
    evidence: dict[str, Any] = {
        "check": "reward",
        "destination": dest,
        "calls": counts[dest],
        "mean_billsec_s": round(mean, 3),
        "cv": round(dest_cv, 4),
        "cluster": counts,
        "clis": clis[:10],
        "window_s": p.window_s,
        "thresholds": {
            "reward_min_calls": p.reward_min_calls,
            "reward_critical_calls": p.reward_critical_calls,
            "reward_max_duration_cv": p.reward_max_duration_cv,
            "reward_max_destinations": p.reward_max_destinations,
        },
        "sample_call_ids": sample_ids(g["calls"], p.sample_call_ids, 2),
    }
    capped = sum(CALLS.capped(groups[d]) for d in cluster)
    if capped:
        evidence["capped_calls"] = capped
    return [level_decision(level, kind, value, episode=episode, occurred_at_s=now_s, reason=reason, evidence=evidence)]


def cap(p: ArbitrageParams) -> int:
    """Calls one number's window keeps at most (never below the critical count)."""
    return entry_cap(p.reward_critical_calls)
