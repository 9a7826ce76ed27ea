"""Autodialer check, sustained: a moderate campaign over the campaign window (``sustained_window_s``).

Once the CLI's campaign window holds ``sustained_min_attempts``: a campaign calls many numbers
(the ``distinct`` sign is required) at a rate ``>= sustained_attempts_per_min`` with ``>=
critical_signs`` signs; held over ``sustained_warn_s`` (the span of its attempts) → ``alert``,
over ``sustained_critical_s`` → ``suspension``. A moderate campaign that never bursts is suspended
this way. Its two signs about the order of attempts are shares of attempts that showed them in
their burst window when dialled (``sequential``; ``regular_gaps``: ``>= min_regular_share``).

Examples
--------
One attempt every 25 s (2.4/min) to a number block, none answered, each dialled while its burst
window was paced: too slow to burst, an alert after 10 minutes, a suspension after 20.

>>> from detectors.autodialer.attempts import CAMPAIGN, new_cli
>>> from detectors.autodialer.params import AutodialerParams
>>> p, entry, seen = AutodialerParams(), new_cli(0.0), []
>>> for i in range(50):
...     _ = CAMPAIGN.add(entry, [25.0 * i, f"3902123400{i:02d}", 0, 0.0, 0, f"a{i}", 1, 0, 1], max_entries=10_000)
...     seen.append(level(entry, p)[0])
>>> seen.index("warning"), seen.index("critical")
(24, 48)
>>> reason("+390299990000", level(entry, p)[1], "critical", p)[:70]
'CLI +390299990000 has run a campaign for 20 min: 50 call attempts (2.4'
"""

from __future__ import annotations

from typing import Any

from detectors.autodialer.attempts import CAMPAIGN, START, held_signs, measure, rate_per_min
from detectors.autodialer.params import AutodialerParams
from detectors.base import AlertLevel


def level(entry: dict[str, Any], p: AutodialerParams) -> tuple[AlertLevel | None, dict[str, Any] | None]:
    """The level the campaign window reaches on its own and its measure (None, None: a cheap gate failed).

    The gates (attempts, span, rate) come first: most CLIs are slower than any campaign.
    """
    c_att = entry["camp"]
    n_camp = len(c_att)
    if not (
        n_camp >= p.sustained_min_attempts
        and c_att[-1][START] - c_att[0][START] >= p.sustained_warn_s
        and rate_per_min(n_camp, c_att[0][START], c_att[-1][START]) >= p.sustained_attempts_per_min
    ):
        return None, None
    camp = measure(entry, p, CAMPAIGN)
    return held_level(camp, p), camp


def held_level(camp: dict[str, Any], p: AutodialerParams) -> AlertLevel | None:
    """The level the campaign window reaches on its own (None: below every sustained threshold)."""
    signs = camp["signs"]
    if (
        camp["attempts"] < p.sustained_min_attempts
        or camp["attempts_per_min"] < p.sustained_attempts_per_min
        or not signs["distinct"]
        or sum(signs.values()) < p.critical_signs
    ):
        return None
    span = camp["last_s"] - camp["first_s"]
    if span >= p.sustained_critical_s:
        return "critical"
    return "warning" if span >= p.sustained_warn_s else None


def reason(cli: str, m: dict[str, Any], level: AlertLevel, p: AutodialerParams) -> str:
    """The reason of a sustained decision at ``level`` from the campaign window's measure ``m``."""
    rate = round(m["attempts_per_min"], 2)
    held, signs = held_signs(m)
    span_min = (m["last_s"] - m["first_s"]) / 60
    held_s = p.sustained_critical_s if level == "critical" else p.sustained_warn_s
    return (
        f"CLI {cli} has run a campaign for {span_min:.0f} min: {m['attempts']} call attempts "
        f"({rate:g}/min) with {len(held)} of 5 autodialer signs ({signs}); {level} after "
        f"{held_s / 60:g} min at {p.sustained_attempts_per_min:g}/min or more: an automatically "
        "generated outbound campaign (clause 8.2)."
    )
