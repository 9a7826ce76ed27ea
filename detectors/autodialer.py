"""``autodialer``: automatically generated outbound campaigns and Wangiri one-ring calls (clause 8.2).

Clause 8.2 forbids automatically generated outbound call campaigns (and clause 8.7
call-centre activity against regulations; a customer authorised to run a call centre
is allowlisted in the rules file, which disables this detector for it).

Per dialling CLI (:func:`detectors.base.customer_number`: the outbound call's ``did``, else
its ``caller``) the detector keeps the attempts by start time in two sliding event-time
windows: the last ``window_s`` seconds (the *burst* window) and the last
``sustained_window_s`` seconds (the *campaign* window). Calls to emergency, toll-free
and allowlisted destinations (:func:`tollguard.numbers.counted_destination`) are never
attempts: they count in no rate, sign or decision.

The attempt rate of a window is measured over the attempts' own span,
``(attempts - 1) / (last start - first start)`` (at least one second): 480 attempts placed
in one minute read 480/min whatever the window's length. Five dialer signs:

* ``distinct``: distinct destinations / attempts ``>= min_distinct_share``;
* ``sequential``: attempts whose callee is within ±1..±``sequential_max_step`` of another
  callee (a number-block sweep) / attempts ``>= min_sequential_share``;
* ``low_asr``: answered / attempts ``<= max_asr``;
* ``short_acd``: mean billsec of answered attempts ``<= max_acd_s`` (no answer: no sign);
* ``regular_gaps``: coefficient of variation of the gaps between attempt starts
  ``<= max_gap_cv`` (a dialer paces; people do not).

In the campaign window the two signs about the order of attempts are shares of attempts that
showed them in their burst window when dialled: ``sequential`` (a callee with a block neighbour
there, ``>= min_sequential_share``) and ``regular_gaps`` (the burst window paced, ``>=
min_regular_share``). An hour's gap CV would not do: one ordinary call of the CLI before the
campaign, or a pause, is a gap that hides an hour of paced dialling.

Dialer checks (one decision kind, ``autodialer``; every comparison inclusive):

* **burst**, over the burst window once it holds ``min_attempts``: rate
  ``>= warn_attempts_per_min`` with ``>= warn_signs`` signs → ``alert``; rate
  ``>= critical_attempts_per_min`` with ``>= critical_signs`` signs → ``suspension`` of the CLI;
* **sustained**, over the campaign window once it holds ``sustained_min_attempts``: a
  campaign calls many numbers (the ``distinct`` sign is required) at a rate
  ``>= sustained_attempts_per_min`` with ``>= critical_signs`` signs; held over
  ``sustained_warn_s`` (the span of its attempts) → ``alert``, over ``sustained_critical_s``
  → ``suspension``. A moderate campaign that never bursts is suspended this way.

Wangiri (one-ring) calls: unanswered (``NO ANSWER``) outbound calls that rang at most
``one_ring_max_s`` (``duration_s``). Burst: ``>= wangiri_warn_calls`` in the burst window →
alert; ``>= wangiri_critical_calls`` that are also ``>= wangiri_min_share`` of its attempts →
suspension. Sustained: ``>= wangiri_sustained_calls`` one-ring calls in the campaign window,
spread over ``>= wangiri_sustained_s``, ``>= wangiri_min_share`` of its attempts, to distinct
numbers (the ``distinct`` sign) → suspension.

Each kind of decision (dialer, wangiri) is returned once per level per episode; the
episode is the ISO time (UTC) of the attempt that first reached the level. A dialer episode
ends when neither window holds enough attempts to be judged, a Wangiri episode when neither
holds a one-ring call. Every decision's evidence names the check (``pace``: ``burst`` or
``sustained``), the campaign (the campaign window: first and last start, duration, attempts,
rate, signs) and ``estimated_cost`` / ``currency`` of the deciding window's attempts (the
rules' rate table; None when none of them is priced).

Cost per CDR: one number classification (memoised), O(``sequential_max_step``) dictionary
look-ups and two insertions into start-sorted attempt lists (at their ends, for calls released
in end order); rates, ASR, ACD and gap CVs come from running sums (costs are priced only when
a decision is made). State per CLI is bounded by the campaign window.
"""

from __future__ import annotations

import bisect
import math
from operator import itemgetter
from typing import Any, ClassVar

from pydantic import Field

from detectors.base import (
    AlertLevel,
    CustomerContext,
    Decision,
    Detector,
    DetectorParams,
    customer_number,
    iso,
    level_decision,
)
from detectors.window import MAX_ENTRIES, Window, sample_ids
from tollguard.cdr import CallDetailRecord, Direction, Disposition
from tollguard.events import ScopeKind
from tollguard.numbers import classify, counted_destination
from tollguard.rates import RateTable

#: Items of an attempt (one list, shared by both windows of its CLI).
_START, _KEY, _ANS, _BILL, _RING1, _ID, _SEQ, _INTL, _REG = range(9)
_LEVELS: dict[AlertLevel | None, int] = {None: 0, "warning": 1, "critical": 2}

#: One CLI's burst window of attempts, by start; the gap sum and the neighbour counts are kept beside it.
ATTEMPTS = Window(
    "att",
    time=_START,
    sums={"ans": _ANS, "bill": _BILL, "ring1": _RING1},
    on_empty={"bill": 0.0},
)
#: The same CLI's campaign window (``sustained_window_s``): running sums and distinct callees.
CAMPAIGN = Window(
    "camp",
    time=_START,
    sums={"c_ans": _ANS, "c_bill": _BILL, "c_ring1": _RING1, "c_seq": _SEQ, "c_reg": _REG, "c_intl": _INTL},
    counts={"c_dst": _KEY},
    on_empty={"c_bill": 0.0},
)
_SIGNS = ("distinct", "sequential", "low_asr", "short_acd", "regular_gaps")
#: The thresholds a dialer / Wangiri decision's evidence names.
_DIALER_THRESHOLDS = {
    "min_attempts", "warn_attempts_per_min", "critical_attempts_per_min", "warn_signs", "critical_signs",
    "min_distinct_share", "sequential_max_step", "min_sequential_share", "max_asr", "max_acd_s", "max_gap_cv",
    "min_regular_share",
    "sustained_window_s", "sustained_min_attempts", "sustained_attempts_per_min", "sustained_warn_s",
    "sustained_critical_s",
}
_WANGIRI_THRESHOLDS = {
    "one_ring_max_s", "wangiri_warn_calls", "wangiri_critical_calls", "wangiri_min_share", "wangiri_sustained_calls",
    "wangiri_sustained_s", "min_distinct_share",
}



class AutodialerParams(DetectorParams):
    """Thresholds of ``autodialer``: defaults are the operator's, tuned per customer in the rules file.

    Rates are attempts per minute over the attempts' own span (``(n - 1) / (last start -
    first start)``); shares are fractions of a window's attempts; times are seconds. Every
    threshold is inclusive: ``min_*``, ``warn_*``, ``critical_*``, ``sustained_*`` and
    ``*_signs`` fire at or above, ``max_*`` and ``one_ring_max_s`` at or below.

    Notes
    -----
    Sources: clause 8.2 forbids automatic campaigns and clause 8.7 irregular call-centre
    activity but fixes no figure, so every default is the operator's starting point, to
    be tuned per customer in the rules file. The burst rates (10 and 20 attempts/min: one call
    every 6 s / 3 s from one CLI) are beyond a person dialling by hand; ``max_asr`` 0.25
    sits well below the ASR of people's calls (~0.5-0.7; Sippy: 70 % incumbents, 50 %
    wholesale, 20 % low-quality routes); ``max_acd_s`` 60: dialer ACD is under one minute
    against a conversational ACD of three minutes or more (legalcallsonly; Ziron: under 30 s);
    ``max_acd_s`` was 30 s: campaigns whose calls last 4-56 s average about 30 s and flicker
    around it, so the 20-seed benchmark suspended 16 of 20 campaigns with 30 s and 19 of 20 with
    60 s, benign customers and honest traps silent either way.
    ``max_gap_cv`` 0.3 separates paced dialling (CV ~0) from people (random gaps, CV ~1);
    ``min_sequential_share`` 0.5 is half the attempts in a block sweep, which random
    destinations practically never reach; ``one_ring_max_s`` 3 s is about one ring cycle
    (ITU-T E.180: ~1 s ring, ~4 s silence), the Wangiri bait. The sustained check asks what a
    campaign at half the pace of the slowest field figure does (46labs: at least 5 attempts a
    minute in batches; half is 2.5, and a campaign rotating three CLIs at 6/min puts 2 on
    each): 2 attempts/min from one CLI, one every 30 s, for 20 minutes (ClearIP judges
    robocalling over 60 min; we suspend within a third of it), judged over the last hour.
    Slow Wangiri: 15 one-ring calls (half of what 3 calls/min give in 10 minutes; 5-minute
    buckets per calling number: NexOSS#402, ClearIP) over at least 10 minutes.
    """

    window_s: float = Field(
        300, ge=60, le=86_400, description="burst window of attempt starts, s (5-minute buckets: ClearIP, NexOSS)"
    )
    min_attempts: int = Field(
        30, ge=2, le=100_000, description="attempts in the burst window before the dialer signs are judged"
    )
    warn_attempts_per_min: float = Field(
        10,
        gt=0,
        le=10_000,
        description="burst alert at or above this rate over the attempts' span (one every 6 s; operator default)",
    )
    critical_attempts_per_min: float = Field(
        20,
        gt=0,
        le=10_000,
        description="burst suspension at or above this rate over the attempts' span (one every 3 s; operator default)",
    )
    min_distinct_share: float = Field(
        0.9, ge=0, le=1, description="sign holds when distinct callees / attempts >= this (campaign lists)"
    )
    sequential_max_step: int = Field(
        10, ge=1, le=1_000, description="callees within ±this in their last digits count as a block sweep"
    )
    min_sequential_share: float = Field(
        0.5, ge=0, le=1, description="sign holds when attempts next to another callee / attempts >= this"
    )
    max_asr: float = Field(
        0.25, ge=0, le=1, description="sign holds when answered / attempts <= this (people reach ~0.5-0.7, Sippy)"
    )
    max_acd_s: float = Field(
        60,
        ge=0,
        le=86_400,
        description="sign holds when mean billsec of answered attempts <= this, s (dialers < 1 min: legalcallsonly)",
    )
    max_gap_cv: float = Field(
        0.3,
        ge=0,
        le=100,
        description="sign holds when std/mean of gaps between attempt starts <= this (pacing)",
    )
    min_regular_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="campaign sign holds when attempts dialled while their burst window was paced / attempts >= this",
    )
    warn_signs: int = Field(2, ge=0, le=5, description="signs (of 5) needed with the burst warning rate")
    critical_signs: int = Field(
        3, ge=0, le=5, description="signs (of 5) needed with the burst critical rate and by the sustained check"
    )
    sustained_window_s: float = Field(
        3600, ge=60, le=86_400, description="campaign window of attempt starts, s (ClearIP: robocalling over 60 min)"
    )
    sustained_min_attempts: int = Field(
        20, ge=2, le=100_000, description="attempts in the campaign window before its signs are judged"
    )
    sustained_attempts_per_min: float = Field(
        2,
        gt=0,
        le=10_000,
        description="campaign rate over its span (one attempt every 30 s; half of 46labs' 5/min, rounded down)",
    )
    sustained_warn_s: float = Field(
        600, ge=0, le=86_400, description="campaign span (first to last attempt) with the signs → alert, s"
    )
    sustained_critical_s: float = Field(
        1200, ge=0, le=86_400, description="campaign span (first to last attempt) with the signs → suspension, s"
    )
    one_ring_max_s: float = Field(
        3, ge=0, le=60, description="an unanswered call that rang at most this long is a one-ring call, s"
    )
    wangiri_warn_calls: int = Field(
        30, ge=1, le=1_000_000, description="one-ring calls in the burst window → alert"
    )
    wangiri_critical_calls: int = Field(
        60,
        ge=1,
        le=1_000_000,
        description="one-ring calls in the burst window → suspension (with the share below)",
    )
    wangiri_min_share: float = Field(
        0.9, ge=0, le=1, description="one-ring calls / attempts needed for a Wangiri suspension"
    )
    wangiri_sustained_calls: int = Field(
        15,
        ge=1,
        le=1_000_000,
        description="one-ring calls in the campaign window → suspension (half of 3/min for 10 min)",
    )
    wangiri_sustained_s: float = Field(
        600,
        ge=0,
        le=86_400,
        description="span (first to last) those one-ring calls must cover for the slow Wangiri suspension, s",
    )
    sample_call_ids: int = Field(10, ge=0, le=1_000, description="latest call ids kept as evidence")

    level_pairs: ClassVar[tuple[tuple[str, str], ...]] = (
        ("warn_attempts_per_min", "critical_attempts_per_min"),
        ("wangiri_warn_calls", "wangiri_critical_calls"),
    )  # a sustained_warn_s at or above sustained_critical_s only means no alert before the suspension


def _new_cli(start_s: float) -> dict[str, Any]:
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
_start = itemgetter(_START)


def _cap(p: AutodialerParams) -> int:
    """Attempts one CLI's burst window keeps at most: never below what a threshold counts (:func:`entry_cap`)."""
    return max(MAX_ENTRIES, p.min_attempts, p.wangiri_critical_calls,
               math.ceil(p.critical_attempts_per_min * p.window_s / 60))  # fmt: skip


def _camp_cap(p: AutodialerParams) -> int:
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
    prev = att[i - 1][_START] if i > 0 else None
    nxt = att[i][_START] if i < len(att) else None
    if prev is not None and nxt is not None:
        entry["sq"] -= (nxt - prev) ** 2
    if prev is not None:
        entry["sq"] += (t - prev) ** 2
    if nxt is not None:
        entry["sq"] += (nxt - t) ** 2


def _gap_cv(n: int, first_s: float, last_s: float, sq: float) -> float | None:
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


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
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
        key = a[_KEY]
        if key[:1] == "~":
            continue
        cost = rates.cost("+" + key, a[_BILL])
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
    first_s, last_s = att[0][_START], att[-1][_START]
    values = {
        "distinct_share": len(entry[c + "dst"]) / n,
        "sequential_share": entry[c + "seq"] / n,
        "asr": ans / n,
        "acd_s": entry[c + "bill"] / ans if ans else None,
    }
    if window is ATTEMPTS:
        values["gap_cv"] = _gap_cv(n, first_s, last_s, entry["sq"])
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


class AutodialerDetector(Detector[AutodialerParams]):
    """Per-CLI attempt rates, five dialer signs and one-ring counts over a burst and a campaign window.

    State: ``{"clis": {cli: {...}}, "due_s": float | None}``; per CLI the burst window
    ``"att"`` (:data:`ATTEMPTS`) and the campaign window ``"camp"`` (:data:`CAMPAIGN`) of
    attempts ``[start_s, callee_key, answered 0/1, billsec_s, one_ring 0/1, call_id,
    sequential 0/1, international 0/1]`` sorted by start (one list in both), their running
    sums (``ans``, ``bill``, ``ring1``; ``c_ans``, ``c_bill``, ``c_ring1``, ``c_seq``,
    ``c_intl``), squared start gaps (``sq``, ``c_sq``), callees (``dst``: ``{callee_key:
    [attempts, neighbour_keys]}``, ``c_dst``: ``{callee_key: attempts}``), burst attempts with
    a neighbour (``seq``), ``newest_s`` and ``ep``: ``{"dialer": level | None, "wangiri": level
    | None}``. Times are UTC epoch seconds; ``callee_key`` is the counted destination's E.164
    digits (else ``~`` and the destination as written). ``"att_capped"`` / ``"camp_capped"``
    appear when a window's cap dropped attempts. Costs are priced when a decision is made.

    Examples
    --------
    >>> from tollguard.cdr import Direction, Disposition
    >>> from tollguard.testing import make_cdr
    >>> det = AutodialerDetector()
    >>> ctx = CustomerContext("c1", params={"autodialer": AutodialerParams()})
    >>> state, out = det.initial_state(), []
    >>> for i in range(100):   # one attempt every 4 s to +390212340000, +390212340001, ...
    ...     out += det.update(state, make_cdr(
    ...         call_id=f"a{i}", direction=Direction.OUTBOUND, did="+390299990000", caller="+390299990000",
    ...         callee=f"+3902123400{i:02d}", start_s=4 * i, end_s=4 * i + 20,
    ...         disposition=Disposition.NO_ANSWER), ctx)
    >>> [(d.type.value, d.level, d.scope_value, d.evidence["attempts_per_min"]) for d in out]
    [('alert', 'warning', '+390299990000', 15.0)]
    """

    name = "autodialer"
    clause = "8.2"
    params_model = AutodialerParams

    def initial_state(self) -> dict[str, Any]:
        return {"clis": {}, "due_s": None}

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        if cdr.direction is not Direction.OUTBOUND:
            return []
        info = classify(cdr.callee, ctx.country)
        dest = counted_destination(info, cdr.callee, ctx.allow_destinations)
        if dest is None:
            return []  # emergency, toll-free, allowlisted: never an attempt
        p = self.params(ctx)
        cli = customer_number(cdr)
        start_s = cdr.start.timestamp()
        entry = state["clis"].get(cli)
        if entry is None or "camp" not in entry:  # a new CLI, or one written before the campaign window
            entry = state["clis"][cli] = _new_cli(start_s)
        horizon_s = max(p.window_s, p.sustained_window_s)
        if start_s <= entry["newest_s"] - horizon_s:
            return []  # started before this CLI's windows: no longer evidence
        entry["newest_s"] = max(entry["newest_s"], start_s)
        due = entry["newest_s"] + horizon_s
        state["due_s"] = due if state["due_s"] is None else min(state["due_s"], due)
        self._evict(entry, p)
        answered = cdr.answered
        one_ring = (
            not answered and cdr.disposition is Disposition.NO_ANSWER and cdr.duration_s <= p.one_ring_max_s
        )
        # E.164 digits (the rate table prices them, the block sweep steps through them); else the text
        key = dest[1:] if dest[:1] == "+" and dest[1:].isascii() and dest[1:].isdigit() else f"~{dest}"
        billsec = cdr.billsec_s if answered else 0.0
        attempt = [start_s, key, int(answered), billsec, int(one_ring), cdr.call_id, 0, int(info.international), 0]
        if start_s > entry["newest_s"] - p.window_s:
            attempt[_SEQ] = self._insert(entry, attempt, p)
            att = entry["att"]
            cv = _gap_cv(len(att), att[0][_START], att[-1][_START], entry["sq"])
            attempt[_REG] = int(cv is not None and cv <= p.max_gap_cv)
        CAMPAIGN.add(entry, attempt, max_entries=_camp_cap(p))
        return self._decide(cli, entry, p, ctx, cdr.end.timestamp(), start_s)

    def advance(self, state: dict[str, Any], now_s: float, ctx: CustomerContext) -> list[Decision]:
        due = state["due_s"]
        if due is None or now_s < due:
            return []
        p = self.params(ctx)
        horizon_s = max(p.window_s, p.sustained_window_s)
        clis = state["clis"]
        for cli in [c for c, e in clis.items() if e["newest_s"] + horizon_s <= now_s]:
            del clis[cli]  # idle for a whole window: nothing left in it can be evidence
        state["due_s"] = min((e["newest_s"] + horizon_s for e in clis.values()), default=None)
        return []

    def reset(self, state: dict[str, Any], scope_kind: ScopeKind, scope_value: str) -> None:
        if scope_kind is ScopeKind.CLI:
            state["clis"].pop(scope_value, None)

    # -- window bookkeeping (running sums) -------------------------------------------------

    @staticmethod
    def _insert(entry: dict[str, Any], attempt: list[Any], p: AutodialerParams) -> int:
        """Insert into the burst window; 1 when the callee has a block neighbour there, else 0."""
        _gap_insert(entry, attempt[_START])
        dropped = ATTEMPTS.add(entry, attempt, max_entries=_cap(p))
        dst, key = entry["dst"], attempt[_KEY]
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
            AutodialerDetector._forget(entry, dropped, p)
        return 1 if slot[1] else 0

    @staticmethod
    def _evict(entry: dict[str, Any], p: AutodialerParams) -> None:
        gone = ATTEMPTS.expire(entry, now_s=entry["newest_s"], window_s=p.window_s)
        if gone:
            AutodialerDetector._forget(entry, gone, p)
        CAMPAIGN.expire(entry, now_s=entry["newest_s"], window_s=p.sustained_window_s)

    @staticmethod
    def _forget(entry: dict[str, Any], gone: list[list[Any]], p: AutodialerParams) -> None:
        """Take the oldest attempts ``gone`` (already out of ``att``) out of the gap sum and the neighbours."""
        att, dst = entry["att"], entry["dst"]
        for i, old in enumerate(gone):
            nxt = gone[i + 1] if i + 1 < len(gone) else (att[0] if att else None)
            if nxt is not None:
                entry["sq"] -= (nxt[_START] - old[_START]) ** 2
        if len(att) < 2:
            entry["sq"] = 0.0  # no gap left: drop accumulated rounding
        for old in gone:
            slot = dst[old[_KEY]]
            slot[0] -= 1
            if slot[1]:
                entry["seq"] -= 1
            if slot[0] == 0:
                del dst[old[_KEY]]
                for k in _near(old[_KEY], p.sequential_max_step, dst):
                    other = dst[k]
                    other[1] -= 1
                    if other[1] == 0:
                        entry["seq"] -= other[0]

    # -- measuring -------------------------------------------------------------------------

    # -- deciding --------------------------------------------------------------------------

    def _decide(
        self, cli: str, entry: dict[str, Any], p: AutodialerParams, ctx: CustomerContext, end_s: float,
        start_s: float,
    ) -> list[Decision]:
        ep = entry["ep"]
        n, n_camp = len(entry["att"]), len(entry["camp"])
        if n < p.min_attempts and n_camp < p.sustained_min_attempts:
            ep["dialer"] = None
        if entry["ring1"] == 0 and entry["c_ring1"] == 0:
            ep["wangiri"] = None
        decisions: list[Decision] = []
        camp: dict[str, Any] | None = None  # the campaign window's figures, measured when needed
        # dialer: the burst window, then the campaign window; the higher level decides
        level: AlertLevel | None = None
        pace, m = "burst", None
        if ep["dialer"] != "critical":
            if n >= p.min_attempts:
                m = measure(entry, p)
                score, rate = sum(m["signs"].values()), m["attempts_per_min"]
                if rate >= p.critical_attempts_per_min and score >= p.critical_signs:
                    level = "critical"
                elif rate >= p.warn_attempts_per_min and score >= p.warn_signs:
                    level = "warning"
            c_att = entry["camp"]
            if (
                level != "critical"
                and n_camp >= p.sustained_min_attempts
                and c_att[-1][_START] - c_att[0][_START] >= p.sustained_warn_s
                and rate_per_min(n_camp, c_att[0][_START], c_att[-1][_START]) >= p.sustained_attempts_per_min
            ):  # cheap gates first: most CLIs are slower than any campaign
                camp = measure(entry, p, CAMPAIGN)
                held = self._sustained_level(camp, p)
                if _LEVELS[held] > _LEVELS[level]:
                    level, pace, m = held, "sustained", camp
        if level is not None and m is not None and _LEVELS[level] > _LEVELS[ep["dialer"]]:
            ep["dialer"] = level
            camp = camp or measure(entry, p, CAMPAIGN)
            decisions.append(self._dialer_decision(cli, entry, m, camp, pace, level, p, ctx, end_s, start_s))
        # Wangiri: the burst window's count, then the campaign window's
        ring_level: AlertLevel | None = None
        ring_pace = "burst"
        ring1 = entry["ring1"]
        if ring1 >= p.wangiri_critical_calls and ring1 / n >= p.wangiri_min_share:
            ring_level = "critical"
        elif ring1 >= p.wangiri_warn_calls:
            ring_level = "warning"
        if (
            ring_level != "critical"
            and ep["wangiri"] != "critical"
            and entry["c_ring1"] >= p.wangiri_sustained_calls
            and entry["c_ring1"] / n_camp >= p.wangiri_min_share
        ):
            camp = camp or measure(entry, p, CAMPAIGN)
            if self._wangiri_sustained(entry, camp, p):
                ring_level, ring_pace = "critical", "sustained"
        if ring_level is not None and _LEVELS[ring_level] > _LEVELS[ep["wangiri"]]:
            ep["wangiri"] = ring_level
            camp = camp or measure(entry, p, CAMPAIGN)
            decisions.append(self._wangiri_decision(cli, entry, camp, ring_pace, ring_level, p, ctx, end_s, start_s))
        return decisions

    @staticmethod
    def _sustained_level(camp: dict[str, Any], p: AutodialerParams) -> AlertLevel | None:
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

    @staticmethod
    def _wangiri_sustained(entry: dict[str, Any], camp: dict[str, Any], p: AutodialerParams) -> bool:
        """Slow Wangiri: enough one-ring calls in the campaign window, spread over enough time, to many numbers."""
        ring1 = entry["c_ring1"]
        if ring1 < p.wangiri_sustained_calls or ring1 / camp["attempts"] < p.wangiri_min_share:
            return False
        if not camp["signs"]["distinct"]:
            return False
        att = entry["camp"]
        first_s = next(a[_START] for a in att if a[_RING1])  # the first and last attempts, as a rule
        last_s = next(a[_START] for a in reversed(att) if a[_RING1])
        return bool(last_s - first_s >= p.wangiri_sustained_s)

    @staticmethod
    def _campaign_evidence(camp: dict[str, Any], entry: dict[str, Any], ctx: CustomerContext) -> dict[str, Any]:
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
            **_rounded(v),
            "signs": [s for s in _SIGNS if camp["signs"][s]],
            "estimated_cost": estimated_cost(entry["camp"], ctx.rates),
        }
        if CAMPAIGN.capped(entry):
            out["capped_calls"] = CAMPAIGN.capped(entry)
        return out

    @staticmethod
    def _common(entry: dict[str, Any], p: AutodialerParams, ctx: CustomerContext, pace: str) -> dict[str, Any]:
        """The deciding window's attempts: the burst window's, or the campaign window's (``pace``)."""
        window = ATTEMPTS if pace == "burst" else CAMPAIGN
        att = entry[window.entries]
        common: dict[str, Any] = {
            "attempts": len(att),
            "window_s": p.window_s if pace == "burst" else p.sustained_window_s,
            "window_first_start": iso(att[0][_START]),
            "window_last_start": iso(att[-1][_START]),
            "sample_call_ids": sample_ids(att, p.sample_call_ids, _ID),
            "estimated_cost": estimated_cost(att, ctx.rates),
            "currency": ctx.rates.currency,
        }
        if window.capped(entry):
            common["capped_calls"] = window.capped(entry)
        return common

    def _dialer_decision(
        self,
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
    ) -> Decision:
        v = m["values"]
        rate = round(m["attempts_per_min"], 2)
        held = [s for s in _SIGNS if m["signs"][s]]
        score = len(held)
        critical = level == "critical"
        figures = {
            "distinct": f"{v['distinct_share']:.0%} distinct destinations",
            "sequential": f"{v['sequential_share']:.0%} sequential numbers",
            "low_asr": f"ASR {v['asr']:.0%}",
            "short_acd": f"ACD {v['acd_s']:.0f} s" if v["acd_s"] is not None else "",
            "regular_gaps": f"gap CV {v['gap_cv']:.2f}" if v.get("gap_cv") is not None
            else f"{v.get('regular_share') or 0:.0%} paced",
        }
        span_min = (m["last_s"] - m["first_s"]) / 60
        signs = ", ".join(figures[s] for s in held)
        if pace == "burst":
            threshold = p.critical_attempts_per_min if critical else p.warn_attempts_per_min
            reason = (
                f"CLI {cli} placed {m['attempts']} call attempts in {span_min:.1f} min ({rate:g}/min, "
                f"{level} at {threshold:g}/min) with {score} of 5 autodialer signs ({signs}): "
                "an automatically generated outbound campaign (clause 8.2)."
            )
        else:
            held_s = p.sustained_critical_s if critical else p.sustained_warn_s
            reason = (
                f"CLI {cli} has run a campaign for {span_min:.0f} min: {m['attempts']} call attempts "
                f"({rate:g}/min) with {score} of 5 autodialer signs ({signs}); {level} after "
                f"{held_s / 60:g} min at {p.sustained_attempts_per_min:g}/min or more: an automatically "
                "generated outbound campaign (clause 8.2)."
            )
        evidence = {
            **AutodialerDetector._common(entry, p, ctx, pace),
            "kind": "autodialer",
            "pace": pace,
            "attempts_per_min": rate,
            **_rounded(v),
            "answered": entry["ans"] if pace == "burst" else entry["c_ans"],
            "signs": held,
            "score": score,
            "campaign": AutodialerDetector._campaign_evidence(camp, entry, ctx),
            "thresholds": p.model_dump(include=_DIALER_THRESHOLDS),
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

    def _wangiri_decision(
        self,
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
        if pace == "burst":
            att = entry["att"]
            n, ring1 = len(att), entry["ring1"]
            first_s, last_s = att[0][_START], att[-1][_START]
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
            **AutodialerDetector._common(entry, p, ctx, pace),
            "kind": "wangiri",
            "pace": pace,
            "one_ring_calls": ring1,
            "one_ring_share": round(ring1 / n, 4),
            "attempts_per_min": round(rate_per_min(n, first_s, last_s), 2),
            "campaign": AutodialerDetector._campaign_evidence(camp, entry, ctx),
            "thresholds": p.model_dump(include=_WANGIRI_THRESHOLDS),
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
