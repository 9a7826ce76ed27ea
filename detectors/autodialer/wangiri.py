"""Wangiri check, fast and slow: one-ring calls of a CLI (call-back bait, clause 8.2).

A one-ring call is an unanswered (``NO ANSWER``) outbound call that rang at most
``one_ring_max_s`` (``duration_s``). Fast (the burst window): ``>= wangiri_warn_calls`` →
``alert``; ``>= wangiri_critical_calls`` that are also ``>= wangiri_min_share`` of its attempts →
``suspension``. Slow (the campaign window): ``>= wangiri_sustained_calls`` one-ring calls, spread
over ``>= wangiri_sustained_s``, ``>= wangiri_min_share`` of its attempts, to distinct numbers (the
``distinct`` sign) → ``suspension``. Decision kind ``wangiri``, its own episode.

Examples
--------
Twenty one-ring calls to distinct numbers, one every 40 s: never enough in 5 minutes for the fast
check, the slow one suspends once 15 or more cover 10 minutes (the 16th call, at 600 s).

>>> from detectors.autodialer.attempts import CAMPAIGN, measure, new_cli
>>> from detectors.autodialer.params import AutodialerParams
>>> p, entry, seen = AutodialerParams(), new_cli(0.0), []
>>> for i in range(20):
...     _ = CAMPAIGN.add(entry, [40.0 * i, f"2327600{i:04d}", 0, 0.0, 1, f"w{i}", 0, 1, 0], max_entries=10_000)
...     seen.append(sustained_gate(entry, p) and sustained(entry, measure(entry, p, CAMPAIGN), p))
>>> burst_level(entry, p), seen.index(True)
(None, 15)
"""

from __future__ import annotations

from typing import Any

from detectors.autodialer.attempts import RING1, START, campaign_evidence, common, rate_per_min
from detectors.autodialer.params import AutodialerParams
from detectors.base import AlertLevel, CustomerContext, Decision, iso, level_decision
from tollguard.events import ScopeKind

#: The thresholds a Wangiri decision's evidence names.
WANGIRI_THRESHOLDS = {
    "one_ring_max_s", "wangiri_warn_calls", "wangiri_critical_calls", "wangiri_min_share", "wangiri_sustained_calls",
    "wangiri_sustained_s", "min_distinct_share",
}


def burst_level(entry: dict[str, Any], p: AutodialerParams) -> AlertLevel | None:
    """Fast Wangiri: the level the burst window's one-ring count reaches (None: below both)."""
    ring1 = entry["ring1"]
    if ring1 >= p.wangiri_critical_calls and ring1 / len(entry["att"]) >= p.wangiri_min_share:
        return "critical"
    if ring1 >= p.wangiri_warn_calls:
        return "warning"
    return None


def sustained_gate(entry: dict[str, Any], p: AutodialerParams) -> bool:
    """The campaign window's running sums allow a slow Wangiri (then :func:`sustained` measures it)."""
    ring1 = entry["c_ring1"]
    return bool(ring1 >= p.wangiri_sustained_calls and ring1 / len(entry["camp"]) >= p.wangiri_min_share)


def sustained(entry: dict[str, Any], camp: dict[str, Any], p: AutodialerParams) -> bool:
    """Slow Wangiri: enough one-ring calls in the campaign window, spread over enough time, to many numbers."""
    ring1 = entry["c_ring1"]
    if ring1 < p.wangiri_sustained_calls or ring1 / camp["attempts"] < p.wangiri_min_share:
        return False
    if not camp["signs"]["distinct"]:
        return False
    att = entry["camp"]
    first_s = next(a[START] for a in att if a[RING1])  # the first and last attempts, as a rule
    last_s = next(a[START] for a in reversed(att) if a[RING1])
    return bool(last_s - first_s >= p.wangiri_sustained_s)


def decision(
    cli: str,
    entry: dict[str, Any],
    camp: dict[str, Any],
    pace: str,
    level: AlertLevel,
    p: AutodialerParams,
    ctx: CustomerContext,
    end_s: float,
    start_s: float,
) -> Decision:
    """The ``wangiri`` decision of the fast (``pace`` ``burst``) or the slow (``sustained``) check."""
    if pace == "burst":
        att = entry["att"]
        n, ring1 = len(att), entry["ring1"]
        first_s, last_s = att[0][START], att[-1][START]
        threshold = p.wangiri_critical_calls if level == "critical" else p.wangiri_warn_calls
        reason = (
            f"CLI {cli} made {ring1} one-ring calls (unanswered, rang <= {p.one_ring_max_s:g} s) "
            f"of {n} attempts ({ring1 / n:.0%}) in {(last_s - first_s) / 60:.1f} min, {level} at "
            f"{threshold}: Wangiri call-back bait (clause 8.2)."
        )
    else:
        n, ring1 = camp["attempts"], entry["c_ring1"]
        first_s, last_s = camp["first_s"], camp["last_s"]
        reason = (
            f"CLI {cli} made {ring1} one-ring calls (unanswered, rang <= {p.one_ring_max_s:g} s) "
            f"of {n} attempts ({ring1 / n:.0%}) to {camp['values']['distinct_share']:.0%} distinct "
            f"numbers over {(last_s - first_s) / 60:.0f} min, {level} at {p.wangiri_sustained_calls} "
            f"over {p.wangiri_sustained_s / 60:g} min: Wangiri call-back bait (clause 8.2)."
        )
    evidence = {
        **common(entry, p, ctx, pace),
        "kind": "wangiri",
        "pace": pace,
        "one_ring_calls": ring1,
        "one_ring_share": round(ring1 / n, 4),
        "attempts_per_min": round(rate_per_min(n, first_s, last_s), 2),
        "campaign": campaign_evidence(camp, entry, ctx),
        "thresholds": p.model_dump(include=WANGIRI_THRESHOLDS),
    }
    return level_decision(
        level,
        ScopeKind.CLI,
        cli,
        episode=f"wangiri@{iso(start_s)}",
        occurred_at_s=end_s,
        reason=reason,
        evidence=evidence,
        clause="8.2",
    )
