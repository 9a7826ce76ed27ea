"""Arbitrage check (a), reward / auto top-up: many answered calls of near-constant length to a few numbers.

A reward or auto top-up scheme earns credit per answered call, so a robot dials a few
numbers (prepaid mobiles, the scheme's lines) over and over and hangs up on a timer: every
call lasts the same billable time, whichever number it went to. The check therefore judges
the **set of numbers** the customer feeds, not each number alone: a scheme spread over
eight numbers puts a handful of calls an hour on each.

Per destination number a group keeps the window's answered calls with running sums of
``billsec - k`` and its square (``k``: the group's first billsec, a shift that keeps the
variance numerically stable), so a number's mean and coefficient of variation (CV) cost
O(1). A number is a **member** while it holds at least ``reward_min_number_calls`` calls
with CV ``<= reward_max_duration_cv`` and a mean from ``reward_min_billsec_s`` to
``reward_max_billsec_s`` (longer calls earn by the minute: IRSF and premium, other checks);
``state["hot"]`` lists the members. When a member is called, its **set** is built around
it: the other members, nearest mean first, join while the pooled CV of all their calls
stays ``<= reward_max_duration_cv`` (numbers whose calls share the near-constant length).
The set's answered calls, counted together, give the level: ``reward_min_calls`` → alert,
``reward_critical_calls`` → suspension.

Scope: ``destination_prefix`` = the called number when the set is that number alone, or a
few numbers (``<= reward_max_destinations``) dialled from several CLIs (each number of the
set is suspended as it is called); ``cli`` when one CLI feeds a set of several numbers;
``account`` when several CLIs feed more than a few numbers.

Alarm panels are the honest look-alike (short test calls of near-constant length to a
receiving centre): their Contact ID report and kiss-off last 8-20 s, so a set whose pooled
mean is below ``reward_min_billsec_s`` (20 s) is never judged. Allowlist a receiving centre
(``allow.destinations``) whose calls are longer.

Group state: ``{"calls": [[end_s, billsec_s, call_id, cli], ...], "k": float, "s1": float,
"s2": float, "clis": {cli: n}, "ep": str | None}`` (``ep``: ISO time at which the number
was first in a set at the alert level).

Examples
--------
Twelve 45-second calls, three to each of four mobiles, one CLI: the set of four numbers
reaches the alert level (10 calls) though no number gets more than three.

>>> from detectors.arbitrage.params import ArbitrageParams
>>> from detectors.base import CustomerContext
>>> from tollguard.testing import make_cdr
>>> ctx, state, p, out = CustomerContext("c1"), {"reward": {}, "hot": []}, ArbitrageParams(), []
>>> for i in range(12):
...     dest = f"+39333123456{i % 4}"
...     cdr = make_cdr(call_id=f"r{i}", direction="outbound", callee=dest, start_s=100 * i, end_s=100 * i + 45)
...     out += check(state, cdr, dest, cdr.end.timestamp(), ctx, p)
>>> [(d.level, str(d.scope_kind), d.evidence["calls"], len(d.evidence["cluster"])) for d in out]
[('warning', 'cli', 10, 4), ('warning', 'cli', 11, 4), ('warning', 'cli', 12, 4)]
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from detectors.arbitrage.params import ArbitrageParams
from detectors.base import AlertLevel, CustomerContext, Decision, customer_number, iso, level_decision, scope_text
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


def _raw(g: dict[str, Any]) -> tuple[int, float, float]:
    """(n, sum of billsec, sum of squares) of a group, for pooling groups of different shifts."""
    n, k, s1 = len(g["calls"]), g["k"], g["s1"]
    return n, n * k + s1, n * k * k + 2 * k * s1 + g["s2"]


def _pooled_cv(n: int, s: float, ss: float) -> float:
    mean = s / n
    return math.sqrt(max(ss / n - mean * mean, 0.0)) / mean if mean > 0 else math.inf


def member(g: dict[str, Any], p: ArbitrageParams) -> bool:
    """The number holds ``reward_min_number_calls`` calls of CV and mean within the reward limits."""
    if len(g["calls"]) < p.reward_min_number_calls:
        return False
    mean, dest_cv = cv(g)
    return p.reward_min_billsec_s <= mean <= p.reward_max_billsec_s and dest_cv <= p.reward_max_duration_cv


def check(
    state: dict[str, Any], cdr: CallDetailRecord, dest: str, now_s: float, ctx: CustomerContext, p: ArbitrageParams
) -> list[Decision]:
    """Fold an answered outbound call to ``dest`` into ``state["reward"]``; the decision it triggers."""
    groups, hot = state["reward"], state["hot"]
    g = groups.get(dest)
    if g is None:
        g = groups[dest] = {"calls": [], "k": cdr.billsec_s, "s1": 0.0, "s2": 0.0, "clis": {}, "ep": None}
    else:
        CALLS.expire(g, now_s=now_s, window_s=p.window_s)
    CALLS.add(g, [now_s, cdr.billsec_s, cdr.call_id, customer_number(cdr)], max_entries=cap(p))
    if not member(g, p):
        g["ep"] = None
        if dest in hot:
            hot.remove(dest)
        return []
    if dest not in hot:
        bisect.insort(hot, dest)
    cluster = _cluster(groups, hot, dest, now_s, p)
    n, s, ss = 0, 0.0, 0.0
    for d in cluster:
        dn, ds, dss = _raw(groups[d])
        n, s, ss = n + dn, s + ds, ss + dss
    mean = s / n
    if n < p.reward_min_calls or not p.reward_min_billsec_s <= mean <= p.reward_max_billsec_s:
        g["ep"] = None
        return []
    for d in cluster:
        if groups[d]["ep"] is None:
            groups[d]["ep"] = iso(now_s)
    return [_decide(groups, cluster, dest, n, mean, _pooled_cv(n, s, ss), now_s, ctx, p)]


def _cluster(groups: dict[str, Any], hot: list[str], dest: str, now_s: float, p: ArbitrageParams) -> list[str]:
    """``dest`` and the members whose calls share its near-constant length (sorted numbers).

    Members join nearest mean first while the pooled CV of the set stays within
    ``reward_max_duration_cv``; a member whose window emptied or that no longer qualifies
    leaves ``hot``.
    """
    mean_d = cv(groups[dest])[0]
    others: list[tuple[float, str]] = []
    for other in list(hot):
        if other == dest:
            continue
        og = groups.get(other)
        if og is not None:
            CALLS.expire(og, now_s=now_s, window_s=p.window_s)
        if og is None or not og["calls"] or not member(og, p):
            hot.remove(other)
            if og is not None:
                og["ep"] = None
            continue
        gap = abs(cv(og)[0] - mean_d)
        if gap <= 2 * p.reward_max_duration_cv * mean_d:
            others.append((gap, other))
    cluster = [dest]
    n, s, ss = _raw(groups[dest])
    for _gap, other in sorted(others):
        on, os_, oss = _raw(groups[other])
        if _pooled_cv(n + on, s + os_, ss + oss) <= p.reward_max_duration_cv:
            cluster.append(other)
            n, s, ss = n + on, s + os_, ss + oss
    return sorted(cluster)


def _cost(groups: dict[str, Any], cluster: list[str], ctx: CustomerContext) -> dict[str, Any]:
    """``estimated_cost`` (rate table: per answered call and minute of each number) and ``currency``.

    ``estimated_cost`` is None when the table prices none of the numbers, with a
    ``cost_note`` naming them; a note also names the unpriced numbers of a partly priced set.
    """
    total, unpriced = 0.0, []
    for d in cluster:
        found = ctx.rates.rate_of(d) if d.startswith("+") else None
        if found is None:
            unpriced.append(d)
            continue
        n, billsec, _ = _raw(groups[d])
        total += n * found[1].per_call + found[1].per_min * billsec / 60.0
    out: dict[str, Any] = {
        "estimated_cost": round(total, 2) if len(unpriced) < len(cluster) else None,
        "currency": ctx.rates.currency,
    }
    if unpriced:
        shown = ", ".join(unpriced[:5]) + (", ..." if len(unpriced) > 5 else "")
        out["cost_note"] = (
            f"the rules' rate table prices none of these numbers ({shown}): no estimate (load the carrier's rates)"
            if len(unpriced) == len(cluster)
            else f"{len(unpriced)} of {len(cluster)} numbers are not in the rate table ({shown}) and count nothing"
        )
    return out


def _decide(
    groups: dict[str, Any],
    cluster: list[str],
    dest: str,
    n: int,
    mean: float,
    set_cv: float,
    now_s: float,
    ctx: CustomerContext,
    p: ArbitrageParams,
) -> Decision:
    clis = sorted({c for d in cluster for c in groups[d]["clis"]})
    counts = {d: len(groups[d]["calls"]) for d in cluster}
    if len(cluster) == 1:
        kind, value = ScopeKind.DESTINATION_PREFIX, dest
    elif len(clis) == 1:
        kind, value = ScopeKind.CLI, clis[0]
    elif len(cluster) <= p.reward_max_destinations:
        kind, value = ScopeKind.DESTINATION_PREFIX, dest
    else:
        kind, value = ScopeKind.ACCOUNT, ctx.customer_id
    level: AlertLevel = "critical" if n >= p.reward_critical_calls else "warning"
    episode = groups[dest]["ep"]
    if kind is not ScopeKind.DESTINATION_PREFIX:
        episode = min(groups[d]["ep"] or episode for d in cluster)
    limit = p.reward_critical_calls if level == "critical" else p.reward_min_calls
    shown = ", ".join(f"{d} {counts[d]}" for d in cluster[:8]) + (", ..." if len(cluster) > 8 else "")
    verdict = "suspended" if level == "critical" else "flagged for review"
    reason = (
        f"Customer {ctx.customer_id} made {n} answered calls of near-constant length (mean {mean:.1f} s, "
        f"CV {set_cv:.3f}) to {len(cluster)} number(s) ({shown}) from {len(clis)} CLI(s) in the last "
        f"{p.window_s / 60:.0f} min; the {level} level is {limit} such calls to a set of numbers (CV <= "
        f"{p.reward_max_duration_cv:g}, mean {p.reward_min_billsec_s:g}-{p.reward_max_billsec_s:g} s; clause 8.2, "
        f"reward/auto top-up), "
        f"so {scope_text(kind, value)} are {verdict}."
    )
    entries = sorted((e for d in cluster for e in groups[d]["calls"]), key=lambda e: e[0])
    evidence: dict[str, Any] = {
        "check": "reward",
        "destination": dest,
        "calls": n,
        "destination_calls": counts[dest],
        "mean_billsec_s": round(mean, 3),
        "cv": round(set_cv, 4),
        "cluster": counts,
        "clis": clis[:10],
        **_cost(groups, cluster, ctx),
        "window_s": p.window_s,
        "thresholds": {
            "reward_min_calls": p.reward_min_calls,
            "reward_critical_calls": p.reward_critical_calls,
            "reward_max_duration_cv": p.reward_max_duration_cv,
            "reward_min_billsec_s": p.reward_min_billsec_s,
            "reward_max_billsec_s": p.reward_max_billsec_s,
            "reward_min_number_calls": p.reward_min_number_calls,
            "reward_max_destinations": p.reward_max_destinations,
        },
        "sample_call_ids": sample_ids(entries, p.sample_call_ids, 2),
    }
    capped = sum(CALLS.capped(groups[d]) for d in cluster)
    if capped:
        evidence["capped_calls"] = capped
    return level_decision(level, kind, value, episode=episode, occurred_at_s=now_s, reason=reason, evidence=evidence)


def cap(p: ArbitrageParams) -> int:
    """Calls one number's window keeps at most (never below the critical count)."""
    return entry_cap(p.reward_critical_calls)
