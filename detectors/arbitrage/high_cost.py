"""Arbitrage check (c), high-cost minutes far above the customer's history (outbound IRSF).

Answered minutes to international numbers of ``high_cost_country_codes`` are summed
over the window and compared with the customer's own baseline: an EWMA of those minutes
per closed UTC hour (``high_cost_baseline_minutes`` before any hour closed), scaled to
the window. The baseline only learns from hours that closed, so a burst does not raise
its own bar.

State: ``{"calls": [[end_s, minutes, call_id, cc], ...], "minutes": float,
"by_cc": {cc: [n, minutes]}, "ep": str | None, "hour": int | None, "hour_min": float,
"base": float | None, "hours": int}`` (``hour``: the open UTC hour, epoch hours;
``hour_min``: its minutes so far; ``base``: the EWMA, None = no history yet).

Examples
--------
>>> from detectors.arbitrage.params import ArbitrageParams
>>> from detectors.base import CustomerContext
>>> from tollguard.testing import make_cdr
>>> hc, p, out = new_state(), ArbitrageParams(), []
>>> for i in range(4):   # four 10-minute answered calls to Sao Tome (+239), in one hour
...     cdr = make_cdr(call_id=f"h{i}", direction="outbound", callee="+2399901234", start_s=700 * i,
...                    end_s=700 * i + 600)
...     close_hours(hc, cdr.end.timestamp(), p)
...     out += check(hc, cdr, "+239", cdr.end.timestamp(), CustomerContext("c1"), p)
>>> # from 30 min on: 5 min/h baseline x factor 5 = 25 min needed, and at least high_cost_min_minutes 30
>>> [(d.level, d.check, d.evidence["minutes"], d.evidence["thresholds"]["required_minutes"]) for d in out]
[('warning', 'high_cost', 30.0, 30), ('warning', 'high_cost', 40.0, 30)]
"""

from __future__ import annotations

import math
from typing import Any

from detectors.arbitrage.params import ArbitrageParams
from detectors.base import AlertLevel, CustomerContext, Decision, iso, level_decision
from detectors.window import Window, entry_cap, sample_ids
from tollguard.cdr import CallDetailRecord
from tollguard.events import ScopeKind
from tollguard.numbers import NumberInfo, matches_prefix

#: The window of the customer's high-cost calls.
CALLS = Window("calls", sums={"minutes": 1}, tallies={"by_cc": (3, 1)}, on_empty={"minutes": 0.0, "ep": None})


def new_state() -> dict[str, Any]:
    """An empty window and no history."""
    return {"calls": [], "minutes": 0.0, "by_cc": {}, "ep": None, "hour": None, "hour_min": 0.0, "base": None,
            "hours": 0}  # fmt: skip


def country_code(info: NumberInfo, p: ArbitrageParams) -> str | None:
    """The listed high-cost country code a call to ``info`` counts under, or None."""
    if info.international and info.number_type in p.high_cost_number_types:
        return matches_prefix(info.e164, p.high_cost_country_codes)
    return None


def close_hours(hc: dict[str, Any], now_s: float, p: ArbitrageParams) -> None:
    """Fold every UTC hour that ended by ``now_s`` into the EWMA baseline (empty hours in closed form)."""
    hour = int(now_s // 3600)
    if hc["hour"] is None:
        hc["hour"] = hour
    elif hour > hc["hour"]:
        a = p.high_cost_baseline_alpha
        base = p.high_cost_baseline_minutes if hc["base"] is None else hc["base"]
        base = (1 - a) * base + a * hc["hour_min"]
        hc["base"] = base * (1 - a) ** (hour - hc["hour"] - 1)
        hc["hours"] += hour - hc["hour"]
        hc["hour"], hc["hour_min"] = hour, 0.0


def check(
    hc: dict[str, Any], cdr: CallDetailRecord, cc: str, now_s: float, ctx: CustomerContext, p: ArbitrageParams
) -> list[Decision]:
    """Fold an answered call to high-cost country code ``cc`` into ``hc``; the decision it triggers."""
    CALLS.expire(hc, now_s=now_s, window_s=p.window_s)
    minutes = cdr.billsec_s / 60.0
    CALLS.add(hc, [now_s, minutes, cdr.call_id, cc], max_entries=entry_cap())
    hc["hour_min"] += minutes
    total = hc["minutes"]
    base = p.high_cost_baseline_minutes if hc["base"] is None else hc["base"]
    need = p.high_cost_history_factor * base * p.window_s / 3600.0
    if total < p.high_cost_min_minutes or total < need:
        hc["ep"] = None
        return []
    if hc["ep"] is None:
        hc["ep"] = iso(now_s)
    level: AlertLevel = "critical" if total >= p.high_cost_critical_minutes else "warning"
    by_cc = {k: round(v[1], 3) for k, v in sorted(hc["by_cc"].items(), key=lambda kv: -kv[1][1])}
    shown = ", ".join(f"{k} {v:.1f} min" for k, v in list(by_cc.items())[:5])
    verdict = "suspended" if level == "critical" else "flagged for review"
    ratio = total / (base * p.window_s / 3600.0) if base > 0 else math.inf
    reason = (
        f"Customer {ctx.customer_id} talked {total:.1f} min to high-cost international destinations "
        f"({shown}) in the last {p.window_s / 60:.0f} min, {ratio:.1f}x its usual {base:.1f} min/h; the "
        f"{level} threshold is "
        f"{p.high_cost_critical_minutes if level == 'critical' else p.high_cost_min_minutes:g} min and "
        f"{p.high_cost_history_factor:g}x the baseline (clause 8.2, IRSF arbitrage), so outbound "
        f"international calls of {ctx.customer_id} are {verdict}."
    )
    evidence: dict[str, Any] = {
        "check": "high_cost",
        "minutes": round(total, 3),
        "calls": len(hc["calls"]),
        "minutes_by_country_code": by_cc,
        "baseline_minutes_per_hour": round(base, 4),
        "history_hours": hc["hours"],
        "ratio_to_baseline": round(ratio, 3) if math.isfinite(ratio) else None,
        "window_s": p.window_s,
        "thresholds": {
            "high_cost_min_minutes": p.high_cost_min_minutes,
            "high_cost_critical_minutes": p.high_cost_critical_minutes,
            "high_cost_history_factor": p.high_cost_history_factor,
            "required_minutes": round(max(need, p.high_cost_min_minutes), 3),
        },
        "sample_call_ids": sample_ids(hc["calls"], p.sample_call_ids, 2),
    }
    if CALLS.capped(hc):
        evidence["capped_calls"] = CALLS.capped(hc)
    return [
        level_decision(
            level,
            ScopeKind.OUTBOUND_INTERNATIONAL,
            ctx.customer_id,
            episode=hc["ep"],
            occurred_at_s=now_s,
            reason=reason,
            evidence=evidence,
        )
    ]
