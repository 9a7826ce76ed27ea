"""One CLI's attempts in ``autodialer``: the two windows, their running sums, measures and shared evidence.

An attempt is one list ``[start_s, callee_key, answered 0/1, billsec_s, one_ring 0/1, call_id,
sequential 0/1, international 0/1, regular 0/1]`` (indices :data:`START` ... :data:`REG`), shared by
the CLI's burst window (:data:`ATTEMPTS`, ``window_s``) and its campaign window (:data:`CAMPAIGN`,
``sustained_window_s``). The checks (:mod:`detectors.autodialer.burst`,
:mod:`detectors.autodialer.sustained`, :mod:`detectors.autodialer.wangiri`) read the windows through
:func:`measure` and the CLI's running sums; nothing here decides.
"""

from __future__ import annotations

import bisect
import math
from operator import itemgetter
from typing import Any

from detectors.autodialer.params import AutodialerParams
from detectors.base import AlertLevel, CustomerContext, Decision, iso, level_decision
from detectors.window import MAX_ENTRIES, Window, sample_ids
from tollguard.events import ScopeKind
from tollguard.rates import RateTable

#: Items of an attempt (one list, shared by both windows of its CLI).
START, KEY, ANS, BILL, RING1, ID, SEQ, INTL, REG = range(9)

#: One CLI's burst window of attempts, by start; the gap sum and the neighbour counts are kept beside it.
ATTEMPTS = Window(
    "att",
    time=START,
    sums={"ans": ANS, "bill": BILL, "ring1": RING1},
    on_empty={"bill": 0.0},
)
#: The same CLI's campaign window (``sustained_window_s``): running sums and distinct callees.
CAMPAIGN = Window(
    "camp",
    time=START,
    sums={"c_ans": ANS, "c_bill": BILL, "c_ring1": RING1, "c_seq": SEQ, "c_reg": REG, "c_intl": INTL},
    counts={"c_dst": KEY},
    on_empty={"c_bill": 0.0},
)
SIGNS = ("distinct", "sequential", "low_asr", "short_acd", "regular_gaps")
#: The thresholds a dialer decision's evidence names (burst or sustained).
DIALER_THRESHOLDS = {
    "min_attempts", "warn_attempts_per_min", "critical_attempts_per_min", "warn_signs", "critical_signs",
    "min_distinct_share", "sequential_max_step", "min_sequential_share", "max_asr", "max_acd_s", "max_gap_cv",
    "min_regular_share",
    "sustained_window_s", "sustained_min_attempts", "sustained_attempts_per_min", "sustained_warn_s",
    "sustained_critical_s",
}


def new_cli(start_s: float) -> dict[str, Any]:
    """A new CLI's state: both windows empty, no episode."""
    return {
        "att": [],
        "newest_s": start_s,
        "ans": 0,
        "bill": 0.0,
        "ring1": 0,
        "sq": 0.0,
        "dst": {},
        "seq": 0,
        "camp": [],
        "c_ans": 0,
        "c_bill": 0.0,
        "c_ring1": 0,
        "c_seq": 0,
        "c_intl": 0,
        "c_reg": 0,
        "c_dst": {},
        "ep": {"dialer": None, "wangiri": None},
    }


#: Key of an attempt: its start (a C-level getter: bisect calls it log n times).
_start = itemgetter(START)


def _cap(p: AutodialerParams) -> int:
    """Attempts one CLI's burst window keeps at most: never below what a threshold counts (:func:`entry_cap`)."""
    return max(MAX_ENTRIES, p.min_attempts, p.wangiri_critical_calls,
               math.ceil(p.critical_attempts_per_min * p.window_s / 60))  # fmt: skip


def camp_cap(p: AutodialerParams) -> int:
    """Attempts one CLI's campaign window keeps at most (:func:`entry_cap`)."""
    return max(MAX_ENTRIES, p.sustained_min_attempts, p.wangiri_sustained_calls)


def rate_per_min(n: int, first_s: float, last_s: float) -> float:
    """Attempts per minute over the attempts' own span: ``(n - 1) * 60 / span``, the span at least 1 s.

    >>> rate_per_min(480, 0.0, 59.875)   # 480 attempts, one every 0.125 s
    480.0
    >>> rate_per_min(30, 0.0, 0.0)      # all in one instant: over one second
    1740.0
    """
    return (n - 1) * 60.0 / max(last_s - first_s, 1.0) if n > 1 else 0.0


def _neighbours(key: str, step: int) -> list[str]:
    """Digit strings within ±1..±step of ``key`` (same width, zero-padded)."""
    if not key.isdigit():
        return []
    value, width = int(key), len(key)
    return [str(value + d).zfill(width) for d in range(-step, step + 1) if d and value + d >= 0]


def _near(key: str, step: int, dst: dict[str, Any]) -> list[str]:
    """The keys of ``dst`` that are in ``_neighbours(key, step)``, in no particular order.

    A CLI's window usually holds fewer callees than the 2 x step neighbours, so it is then
    cheaper to test each held key than to build every neighbour string.
    """
    if len(dst) >= 2 * step:
        return [k for k in _neighbours(key, step) if k in dst]
    if not key.isdigit():
        return []
    value, width = int(key), len(key)
    return [
        k for k in dst
        if k.isascii() and k.isdigit() and 0 < abs(int(k) - value) <= step and str(int(k)).zfill(width) == k
    ]  # fmt: skip


def _gap_insert(entry: dict[str, Any], t: float) -> None:
    """Add the gaps around a new start ``t`` (before its insertion) to the burst window's squared-gap sum."""
    att = entry["att"]
    i = bisect.bisect_right(att, t, key=_start)
    prev = att[i - 1][START] if i > 0 else None
    nxt = att[i][START] if i < len(att) else None
    if prev is not None and nxt is not None:
        entry["sq"] -= (nxt - prev) ** 2
    if prev is not None:
        entry["sq"] += (t - prev) ** 2
    if nxt is not None:
        entry["sq"] += (nxt - t) ** 2


def gap_cv(n: int, first_s: float, last_s: float, sq: float) -> float | None:
    """Coefficient of variation of the ``n - 1`` gaps between ``n`` sorted starts (None below 3 starts)."""
    if n < 3:
        return None
    mean = (last_s - first_s) / (n - 1)
    var = max(sq / (n - 1) - mean * mean, 0.0)
    return math.sqrt(var) / mean if mean > 0 else 0.0


def _signs(values: dict[str, Any], p: AutodialerParams) -> dict[str, bool]:
    """The five signs of a window's values (the campaign window's pacing is a share, the burst window's a CV)."""
    acd, cv = values["acd_s"], values.get("gap_cv")
    return {
        "distinct": values["distinct_share"] >= p.min_distinct_share,
        "sequential": values["sequential_share"] >= p.min_sequential_share,
        "low_asr": values["asr"] <= p.max_asr,
        "short_acd": acd is not None and acd <= p.max_acd_s,
        "regular_gaps": (cv is not None and cv <= p.max_gap_cv) if "gap_cv" in values
        else values["regular_share"] >= p.min_regular_share,
    }


def rounded(values: dict[str, Any]) -> dict[str, Any]:
    """A window's sign values as evidence: shares to 4 decimals, the ACD to 0.1 s, None kept."""
    return {k: None if v is None else round(v, 1 if k == "acd_s" else 4) for k, v in values.items()}


def estimated_cost(attempts: list[list[Any]], rates: RateTable) -> float | None:
    """What ``attempts`` cost by the rate table: the priced ones' sum, None when none is priced.

    Computed when a decision is made (rarely), not kept per attempt. Only E.164 destinations
    (``callee_key`` of digits) can be priced; an unanswered attempt to a priced one costs 0.

    >>> from tollguard.rates import Rate
    >>> table = RateTable(prefixes={"+39899": Rate(per_min=1.5, per_call=0.5)})
    >>> estimated_cost([[0.0, "39899123456", 1, 120.0], [9.0, "39899123457", 0, 0.0]], table)
    3.5
    >>> estimated_cost([[0.0, "390612345678", 1, 120.0]], table) is None
    True
    """
    total, priced = 0.0, False
    for a in attempts:
        key = a[KEY]
        if key[:1] == "~":
            continue
        cost = rates.cost("+" + key, a[BILL])
        if cost is not None:
            total, priced = total + cost, True
    return round(total, 4) if priced else None


def measure(entry: dict[str, Any], p: AutodialerParams, window: Window = ATTEMPTS) -> dict[str, Any]:
    """Attempts, rate over their span, sign values and signs of one CLI's burst window or :data:`CAMPAIGN`.

    ``entry`` is a CLI's state (``state["clis"][cli]``) holding at least one attempt in ``window``.
    Returns ``{"attempts", "attempts_per_min", "first_s", "last_s", "values", "signs"}``.
    """
    c = "" if window is ATTEMPTS else "c_"
    att = entry[window.entries]
    n, ans = len(att), entry[c + "ans"]
    first_s, last_s = att[0][START], att[-1][START]
    values = {
        "distinct_share": len(entry[c + "dst"]) / n,
        "sequential_share": entry[c + "seq"] / n,
        "asr": ans / n,
        "acd_s": entry[c + "bill"] / ans if ans else None,
    }
    if window is ATTEMPTS:
        values["gap_cv"] = gap_cv(n, first_s, last_s, entry["sq"])
    else:
        values["regular_share"] = entry["c_reg"] / n
    return {
        "attempts": n,
        "attempts_per_min": rate_per_min(n, first_s, last_s),
        "first_s": first_s,
        "last_s": last_s,
        "values": values,
        "signs": _signs(values, p),
    }


def insert(entry: dict[str, Any], attempt: list[Any], p: AutodialerParams) -> int:
    """Insert into the burst window; 1 when the callee has a block neighbour there, else 0."""
    _gap_insert(entry, attempt[START])
    dropped = ATTEMPTS.add(entry, attempt, max_entries=_cap(p))
    dst, key = entry["dst"], attempt[KEY]
    slot = dst.get(key)
    if slot is None:
        near = _near(key, p.sequential_max_step, dst)
        dst[key] = slot = [0, len(near)]
        for k in near:
            other = dst[k]
            if other[1] == 0:
                entry["seq"] += other[0]  # its attempts now have a neighbour
            other[1] += 1
    slot[0] += 1
    if slot[1]:
        entry["seq"] += 1
    if dropped:
        forget(entry, dropped, p)
    return 1 if slot[1] else 0


def evict(entry: dict[str, Any], p: AutodialerParams) -> None:
    """Drop the attempts that left the burst and the campaign windows (event time: ``newest_s``)."""
    gone = ATTEMPTS.expire(entry, now_s=entry["newest_s"], window_s=p.window_s)
    if gone:
        forget(entry, gone, p)
    CAMPAIGN.expire(entry, now_s=entry["newest_s"], window_s=p.sustained_window_s)


def forget(entry: dict[str, Any], gone: list[list[Any]], p: AutodialerParams) -> None:
    """Take the oldest attempts ``gone`` (already out of ``att``) out of the gap sum and the neighbours."""
    att, dst = entry["att"], entry["dst"]
    for i, old in enumerate(gone):
        nxt = gone[i + 1] if i + 1 < len(gone) else (att[0] if att else None)
        if nxt is not None:
            entry["sq"] -= (nxt[START] - old[START]) ** 2
    if len(att) < 2:
        entry["sq"] = 0.0  # no gap left: drop accumulated rounding
    for old in gone:
        slot = dst[old[KEY]]
        slot[0] -= 1
        if slot[1]:
            entry["seq"] -= 1
        if slot[0] == 0:
            del dst[old[KEY]]
            for k in _near(old[KEY], p.sequential_max_step, dst):
                other = dst[k]
                other[1] -= 1
                if other[1] == 0:
                    entry["seq"] -= other[0]

# -- measuring -------------------------------------------------------------------------

# -- deciding --------------------------------------------------------------------------


def campaign_evidence(camp: dict[str, Any], entry: dict[str, Any], ctx: CustomerContext) -> dict[str, Any]:
    v = camp["values"]
    out = {
        "first_start": iso(camp["first_s"]),
        "last_start": iso(camp["last_s"]),
        "duration_s": round(camp["last_s"] - camp["first_s"], 1),
        "attempts": camp["attempts"],
        "attempts_per_min": round(camp["attempts_per_min"], 2),
        "answered": entry["c_ans"],
        "one_ring_calls": entry["c_ring1"],
        "international_share": round(entry["c_intl"] / camp["attempts"], 4),
        **rounded(v),
        "signs": [s for s in SIGNS if camp["signs"][s]],
        "estimated_cost": estimated_cost(entry["camp"], ctx.rates),
    }
    if CAMPAIGN.capped(entry):
        out["capped_calls"] = CAMPAIGN.capped(entry)
    return out


def common(entry: dict[str, Any], p: AutodialerParams, ctx: CustomerContext, pace: str) -> dict[str, Any]:
    """The deciding window's attempts: the burst window's, or the campaign window's (``pace``)."""
    window = ATTEMPTS if pace == "burst" else CAMPAIGN
    att = entry[window.entries]
    common: dict[str, Any] = {
        "attempts": len(att),
        "window_s": p.window_s if pace == "burst" else p.sustained_window_s,
        "window_first_start": iso(att[0][START]),
        "window_last_start": iso(att[-1][START]),
        "sample_call_ids": sample_ids(att, p.sample_call_ids, ID),
        "estimated_cost": estimated_cost(att, ctx.rates),
        "currency": ctx.rates.currency,
    }
    if window.capped(entry):
        common["capped_calls"] = window.capped(entry)
    return common


def held_signs(m: dict[str, Any]) -> tuple[list[str], str]:
    """The signs a measure holds, in :data:`SIGNS` order, and their figures in words (for a reason)."""
    v = m["values"]
    held = [s for s in SIGNS if m["signs"][s]]
    figures = {
        "distinct": f"{v['distinct_share']:.0%} distinct destinations",
        "sequential": f"{v['sequential_share']:.0%} sequential numbers",
        "low_asr": f"ASR {v['asr']:.0%}",
        "short_acd": f"ACD {v['acd_s']:.0f} s" if v["acd_s"] is not None else "",
        "regular_gaps": f"gap CV {v['gap_cv']:.2f}" if v.get("gap_cv") is not None
        else f"{v.get('regular_share') or 0:.0%} paced",
    }
    return held, ", ".join(figures[s] for s in held)


def dialer_decision(
    cli: str,
    entry: dict[str, Any],
    m: dict[str, Any],
    camp: dict[str, Any],
    pace: str,
    level: AlertLevel,
    p: AutodialerParams,
    ctx: CustomerContext,
    end_s: float,
    start_s: float,
    reason: str,
) -> Decision:
    """The ``autodialer`` decision of the burst or the sustained check (``pace``), its ``reason`` the check's."""
    v = m["values"]
    held, _ = held_signs(m)
    evidence = {
        **common(entry, p, ctx, pace),
        "kind": "autodialer",
        "pace": pace,
        "attempts_per_min": round(m["attempts_per_min"], 2),
        **rounded(v),
        "answered": entry["ans"] if pace == "burst" else entry["c_ans"],
        "signs": held,
        "score": len(held),
        "campaign": campaign_evidence(camp, entry, ctx),
        "thresholds": p.model_dump(include=DIALER_THRESHOLDS),
    }
    return level_decision(
        level,
        ScopeKind.CLI,
        cli,
        episode=f"autodialer@{iso(start_s)}",
        occurred_at_s=end_s,
        reason=reason,
        evidence=evidence,
        clause="8.2",
    )
