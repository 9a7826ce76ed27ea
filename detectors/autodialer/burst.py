"""Autodialer check, burst: a fast dialer over the burst window (``window_s``).

Once the CLI's burst window holds ``min_attempts``: a rate over the attempts' own span
``>= warn_attempts_per_min`` with ``>= warn_signs`` of the five dialer signs → ``alert``; a rate
``>= critical_attempts_per_min`` with ``>= critical_signs`` signs → ``suspension`` of the CLI. The
window's gap CV is its ``regular_gaps`` sign (``<= max_gap_cv``: a dialer paces; people do not).

Examples
--------
One attempt every 4 s (15/min) to a number block, none answered: 4 signs at 15/min, an alert
(the critical rate is 20/min).

>>> from detectors.autodialer.attempts import ATTEMPTS, insert, new_cli
>>> from detectors.autodialer.params import AutodialerParams
>>> p, entry = AutodialerParams(), new_cli(0.0)
>>> for i in range(30):
...     entry["newest_s"] = 4.0 * i
...     _ = insert(entry, [4.0 * i, f"3902123400{i:02d}", 0, 0.0, 0, f"a{i}", 0, 0, 0], p)
>>> lv, m = level(entry, p)
>>> lv, m["attempts_per_min"], sorted(s for s, held in m["signs"].items() if held)
('warning', 15.0, ['distinct', 'low_asr', 'regular_gaps', 'sequential'])
>>> reason("+390299990000", m, lv, p)[:76]
'CLI +390299990000 placed 30 call attempts in 1.9 min (15/min, warning at 10/'
"""

from __future__ import annotations

from typing import Any

from detectors.autodialer.attempts import held_signs, measure
from detectors.autodialer.params import AutodialerParams
from detectors.base import AlertLevel


def level(entry: dict[str, Any], p: AutodialerParams) -> tuple[AlertLevel | None, dict[str, Any] | None]:
    """The level the burst window reaches and its measure (None, None below ``min_attempts``)."""
    if len(entry["att"]) < p.min_attempts:
        return None, None
    m = measure(entry, p)
    score, rate = sum(m["signs"].values()), m["attempts_per_min"]
    if rate >= p.critical_attempts_per_min and score >= p.critical_signs:
        return "critical", m
    if rate >= p.warn_attempts_per_min and score >= p.warn_signs:
        return "warning", m
    return None, m


def reason(cli: str, m: dict[str, Any], level: AlertLevel, p: AutodialerParams) -> str:
    """The reason of a burst decision at ``level`` from the burst window's measure ``m``."""
    rate = round(m["attempts_per_min"], 2)
    held, signs = held_signs(m)
    span_min = (m["last_s"] - m["first_s"]) / 60
    threshold = p.critical_attempts_per_min if level == "critical" else p.warn_attempts_per_min
    return (
        f"CLI {cli} placed {m['attempts']} call attempts in {span_min:.1f} min ({rate:g}/min, "
        f"{level} at {threshold:g}/min) with {len(held)} of 5 autodialer signs ({signs}): "
        "an automatically generated outbound campaign (clause 8.2)."
    )
