"""Matching events to the simulator's episode labels: detected or not, how fast, with what coverage.

Shared by the detection benchmark (``bench/detection.py``) and ``tollguard backtest --labels``.

* an event *covers* an episode call when its scope contains it (``account``: every call of the
  customer; ``cli``: outbound calls presenting the number; ``did``: calls on the number, both
  ways; ``destination_prefix``: outbound calls to numbers under the prefix;
  ``outbound_international``: outbound calls outside the customer's country code);
* an episode is **detected at the required level** (its label's ``required_level``: a suspension
  for the fraud kinds, ``capacity_increase``, ``compliance_notice``, an alert or stronger for the
  volume anomaly) once the events of that type (or stronger) of its customer, from its first call
  on, cover at least ``coverage`` (default 0.5) of its calls; **at any level** the same with an
  alert or a suspension for the fraud kinds. The time to detect (seconds) is the ``occurred_at``
  of the event that reached the coverage minus the episode's first call.

Events are the JSON form (``Event.to_json_dict()`` or a line of an events file); a call is the
tuple :data:`Call` of its direction, caller, callee and DID (E.164 where normalised).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers

#: ``(direction, caller, callee, did)`` of one call, as the CDR has them.
Call = tuple[str, str, str, str | None]

#: Strength of the fraud event types: a suspension also detects what needs an alert.
RANK = {"alert": 1, "suspension": 2}


def covers(scope: Mapping[str, str], call: Call, home_cc: str) -> bool:
    """Whether an event's ``scope`` (``{"kind", "value"}``) contains ``call``.

    ``home_cc`` is the customer's country calling code with its plus (``"+39"``).

    >>> covers({"kind": "destination_prefix", "value": "+979"}, ("outbound", "+3902", "+97912", None), "+39")
    True
    >>> covers({"kind": "cli", "value": "+3902"}, ("inbound", "+44", "+3902", "+3902"), "+39")
    False
    """
    direction, caller, callee, did = call
    kind, value = scope["kind"], scope["value"]
    if kind == "account":
        return True
    if kind == "cli":  # the presented number of outbound calls
        return direction == "outbound" and (did == value or caller == value)
    if kind == "did":  # the number, both ways
        return did == value or callee == value or caller == value
    if kind == "destination_prefix":
        return direction == "outbound" and callee.startswith(value)
    if kind == "outbound_international":
        return direction == "outbound" and callee.startswith("+") and not callee.startswith(home_cc)
    return False


def qualifies(event_type: str, required: str) -> bool:
    """Whether an event of ``event_type`` meets the ``required`` level (a suspension meets an alert's)."""
    if required in RANK:
        return RANK.get(event_type, 0) >= RANK[required]
    return event_type == required


def any_level(required: str) -> str:
    """The lowest event of the required one's family: a fraud kind's alert, else the event itself.

    A ``capacity_increase`` (billing) on a pumped DID is not a detection of the pumping.
    """
    return "alert" if required in RANK else required


def home_code(country: str) -> str:
    """``"+39"`` for ``"IT"``: the country calling code :func:`covers` takes."""
    return "+" + str(phonenumbers.country_code_for_region(country))


def event_time_s(event: Mapping[str, Any]) -> float:
    """An event's ``occurred_at`` as UTC epoch seconds."""
    return datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00")).timestamp()


def reach(events: Sequence[Mapping[str, Any]], calls: Sequence[Call], home_cc: str, start_s: float, need: float,
          required: str) -> tuple[float | None, float, list[int]]:
    """How the events (one customer's, by ``occurred_at``) detect an episode at the ``required`` level.

    Returns
    -------
    (time to detect in seconds or None, best coverage reached (0-1), indexes of the events that counted)
    """
    if not calls:
        return None, 0.0, []
    covered: set[int] = set()
    used: list[int] = []
    for i, ev in enumerate(events):
        t = event_time_s(ev)
        if t < start_s or not qualifies(str(ev["type"]), required):
            continue
        new = {j for j, call in enumerate(calls) if j not in covered and covers(ev["scope"], call, home_cc)}
        if not new:
            continue
        covered |= new
        used.append(i)
        if len(covered) >= need * len(calls):
            return t - start_s, len(covered) / len(calls), used
    return None, len(covered) / len(calls), used


@dataclass
class EpisodeMatch:
    """How one labelled episode was detected by a run's events (see the module docstring).

    ``touching`` holds the events (JSON form) of the customer, from the episode's first call on,
    that cover at least one of its calls.
    """

    label: Mapping[str, Any]
    required_level: str
    detected_required: bool
    ttd_required_s: float | None
    coverage_required: float
    detected_any: bool
    ttd_any_s: float | None
    coverage_any: float
    touching: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def detectors(self) -> list[str]:
        """Detectors of the events that touched the episode, sorted."""
        return sorted({str(ev["detector"]) for ev in self.touching})


def label_start_s(label: Mapping[str, Any]) -> float:
    """A label's first call (UTC epoch s), from its ``start`` (datetime or ISO 8601 text)."""
    start = label["start"]
    if isinstance(start, datetime):
        return start.timestamp()
    return datetime.fromisoformat(str(start).replace("Z", "+00:00")).timestamp()


def match_episode(label: Mapping[str, Any], events: Sequence[Mapping[str, Any]], calls: Sequence[Call],
                  home_cc: str, coverage: float = 0.5) -> EpisodeMatch:
    """Match one label to the events of its customer (sorted by ``occurred_at``).

    Parameters
    ----------
    label : mapping
        A label (``EpisodeLabel.to_json_dict()`` or a line of ``tollguard simulate --labels``):
        ``start``, ``required_level`` (None or absent: an alert).
    events : sequence of event dicts
        The customer's events, by ``occurred_at``.
    calls : sequence of Call
        The episode's calls (those of its ``call_ids`` that were read).
    home_cc : str
        The customer's country calling code (:func:`home_code`).
    coverage : float
        Share of the episode's calls the events must cover (0-1).
    """
    start_s = label_start_s(label)
    required = label.get("required_level") or "alert"
    ttd_req, cov_req, _ = reach(events, calls, home_cc, start_s, coverage, required)
    ttd_any, cov_any, _ = reach(events, calls, home_cc, start_s, coverage, any_level(required))
    touching = [ev for ev in events
                if event_time_s(ev) >= start_s and any(covers(ev["scope"], c, home_cc) for c in calls)]
    return EpisodeMatch(label, required, ttd_req is not None, ttd_req, round(cov_req, 3), ttd_any is not None,
                        ttd_any, round(cov_any, 3), touching)


def by_customer(events: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Events grouped per customer, each list sorted by ``occurred_at`` (stable)."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for ev in sorted(events, key=event_time_s):
        out.setdefault(str(ev["customer_id"]), []).append(ev)
    return out
