"""``premium_destination``: outbound calls to premium, shared-cost, personal and high-risk numbers (8.2).

Clause 8.2 of the operator's terms forbids calls to premium, "reward", "auto top-up",
personal-number and shared-cost numbers, even unanswered ones. This detector counts,
per customer and over a sliding event-time window, the outbound calls (attempts,
answered or not) and the answered minutes to:

* numbers that libphonenumber types as premium rate, shared cost or personal number
  (:func:`tollguard.numbers.classify` with the customer's country), and short numbers
  whose expected cost is premium rate (``48280`` in IT);
* numbers under one of the operator's high-risk prefixes (``ctx.high_risk_prefixes``:
  IRSF / revenue-share ranges such as ``+979``, ``+881``, ``+882``, ``+883``).

Emergency numbers, toll-free numbers and the customer's ``allow_destinations`` never
count. Calls placed in parallel are a critical sign on their own: a person makes one call at a
time, a script or a hacked PBX opens several lines at once (six calls to 899 numbers placed one
per second, all in parallel: issue 9). The window's parallel calls are its exact peak of
simultaneous counted calls (each call's ``[start, end)``; calls are released in end order, so
the peak inside each new call is final when it arrives).

Warning → ``alert`` (level ``warning``); critical (attempts, answered minutes or parallel
calls) → ``suspension`` (level ``critical``) with the narrowest scope the window's calls support:

1. ``destination_prefix`` when every call of the window shares one prefix (the
   high-risk prefix that matched, or ``+`` country code + the first
   ``range_national_digits`` national digits, e.g. ``+39899``; a short number is its own
   prefix);
2. else ``outbound_international`` (value: the customer id) when every call is international;
3. else ``cli`` when one CLI (:func:`detectors.base.customer_number`) placed every call;
4. else ``account`` (value: the customer id).
"""

from __future__ import annotations

import bisect
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
    scope_text,
)
from detectors.window import Window, entry_cap, sample_ids
from tollguard.cdr import CallDetailRecord, Direction
from tollguard.events import ScopeKind
from tollguard.numbers import NumberInfo, NumberType, classify, counted_destination, matches_prefix

#: Entry fields of ``state["calls"]`` (one list per call, JSON-serialisable): window time (the
#: newest end seen when it arrived), call id, destination, premium prefix, international 0/1, CLI,
#: billsec, the call's own start and end, its estimated cost, priced 0/1, and the peak of
#: simultaneous counted calls inside it as text (a key of ``by_parallel``).
_END, _ID, _DEST, _PREFIX, _INTL, _CLI, _BILLSEC, _START, _CALL_END, _COST, _PRICED, _PAR = range(12)

#: The window of counted calls: the detector's state is this window.
CALLS = Window(
    "calls",
    time=_END,
    sums={"billsec": _BILLSEC, "answered": lambda c, _s: c[_BILLSEC] > 0, "intl": _INTL, "cost": _COST,
          "priced": _PRICED},
    counts={"by_prefix": _PREFIX, "by_cli": _CLI, "by_parallel": _PAR},
    on_empty={"billsec": 0.0, "cost": 0.0, "ep": None},
)  # fmt: skip
_window_end = itemgetter(_END)


class PremiumDestinationParams(DetectorParams):
    """Thresholds of ``premium_destination``: attempts and minutes fire at ``>=`` (inclusive).

    Notes
    -----
    Sources of the defaults: clause 8.2 forbids these calls outright, so the levels are
    small: 3 / 10 attempts and 30 answered minutes per hour are tollguard's operator
    defaults; ``warn_minutes`` 10 is a third of ``critical_minutes``. The number types
    are the ones clause 8.2 names, as libphonenumber's metadata types them.
    ``critical_parallel_calls`` 3: issue 9 saw six calls to Italian 899 numbers placed one a
    second, all in parallel, from a hacked line; a fraudster at half that opens three lines
    (OpenSIPS fraud_detection keeps a concurrent-calls counter per called prefix for this).
    """

    window_s: float = Field(
        3600, ge=60, le=7 * 86_400, description="sliding event-time window, seconds (one hour: NOC review)"
    )
    warn_attempts: int = Field(
        3, ge=1, le=100_000, description="premium attempts in the window, answered or not (8.2) → alert"
    )
    warn_minutes: float = Field(
        10, gt=0, le=100_000, description="answered premium minutes in the window → alert (1/3 of critical)"
    )
    critical_attempts: int = Field(
        10, ge=1, le=100_000, description="premium call attempts in the window → suspension (clause 8.2)"
    )
    critical_minutes: float = Field(
        30, gt=0, le=100_000, description="answered premium minutes in the window → suspension (clause 8.2)"
    )
    critical_parallel_calls: int = Field(
        3,
        ge=2,
        le=100_000,
        description="simultaneous premium calls in the window → suspension (half the six-line attack of issue 9)",
    )
    premium_types: tuple[NumberType, ...] = Field(
        (NumberType.PREMIUM_RATE, NumberType.SHARED_COST, NumberType.PERSONAL_NUMBER),
        description="number types (libphonenumber) that count: the ones clause 8.2 names",
    )
    short_premium: bool = Field(True, description="short numbers of premium expected cost count too")
    range_national_digits: int = Field(
        3, ge=0, le=8, description="national digits after the country code naming a premium range (+39 899)"
    )
    sample_call_ids: int = Field(10, ge=0, le=1_000, description="most recent call ids kept as evidence")

    level_pairs: ClassVar[tuple[tuple[str, str], ...]] = (
        ("warn_attempts", "critical_attempts"),
        ("warn_minutes", "critical_minutes"),
    )


def premium_prefix(
    info: NumberInfo, callee: str, ctx: CustomerContext, params: PremiumDestinationParams
) -> str | None:
    """The prefix under which a call counts as premium, or None when it does not count.

    Parameters
    ----------
    info : NumberInfo
        ``classify(callee, ctx.country)``.
    callee : str
        The dialled number as in the CDR (used for short numbers, which have no E.164).

    Returns
    -------
    str or None
        The matching high-risk prefix (``"+881"``), ``+`` country code + the first
        ``range_national_digits`` national digits of a premium / shared-cost / personal
        number (``"+39899"``), the short number itself (``"48280"``), or None for
        emergency, toll-free, allowlisted (:func:`tollguard.numbers.counted_destination`)
        and ordinary numbers.
    """
    dest = counted_destination(info, callee, ctx.allow_destinations)
    return None if dest is None else _premium_range(info, dest, ctx, params)


def _premium_range(
    info: NumberInfo, dest: str, ctx: CustomerContext, params: PremiumDestinationParams
) -> str | None:
    """:func:`premium_prefix` of a counted destination ``dest``."""
    e164 = info.e164
    prefix = matches_prefix(e164, ctx.high_risk_prefixes) if ctx.high_risk_prefixes else None
    if prefix is not None:
        return prefix
    if info.number_type in params.premium_types and e164 and info.country_code:
        cc = str(info.country_code)
        return "+" + cc + e164[1 + len(cc) : 1 + len(cc) + params.range_national_digits]
    if params.short_premium and info.short_cost == "premium_rate" and e164 is None:
        return dest  # a short number: its own range
    return None


def _peak_within(calls: list[list[Any]], start_s: float, end_s: float) -> int:
    """Peak of simultaneous calls inside ``[start_s, end_s)``: the new call and the window's ``calls``.

    A zero-length call overlaps nothing (1 when it is the only one). Calls are half-open
    intervals ``[start, end)``: one ending when another starts does not overlap it.

    >>> calls = [[s + 60.0, "a", "", "", 0, "", 0, s, s + 60.0, 0.0, 0, "1"] for s in (0.0, 1.0, 2.0)]
    >>> _peak_within(calls, 3.0, 63.0), _peak_within(calls, 60.0, 90.0), _peak_within(calls, 62.0, 90.0)
    (4, 3, 1)
    """
    if end_s <= start_s:
        return 1
    first = bisect.bisect_right(calls, start_s, key=_window_end)  # window time >= the call's own end
    changes = [(start_s, 1)]
    for c in calls[first:]:
        if c[_CALL_END] > start_s and c[_START] < end_s and c[_CALL_END] > c[_START]:
            changes.append((max(c[_START], start_s), 1))
            if c[_CALL_END] < end_s:
                changes.append((c[_CALL_END], -1))
    if len(changes) == 1:
        return 1
    changes.sort()  # at equal times -1 sorts before +1: an end and a start at t do not overlap
    count = peak = 0
    for _, delta in changes:
        count += delta
        peak = max(peak, count)
    return peak


class PremiumDestinationDetector(Detector[PremiumDestinationParams]):
    """Premium / high-risk destination calls per customer in a sliding window → alert, then suspension.

    Attempts count every outbound call to a counted destination (answered or not);
    minutes are ``billsec_s / 60`` of those calls. A call is in the window while
    ``end > now - window_s`` (``now`` = latest CDR end seen): half-open, so a call
    ending exactly ``window_s`` before ``now`` has left it. Thresholds are inclusive
    (``attempts >= warn_attempts`` fires). The decision is returned again on every
    further counted call while the window meets a threshold (the engine keeps one
    event per scope and episode); the episode is the ISO time at which the window
    first met a threshold; it ends when a counted call finds the window below every
    threshold, when the window empties, or on a reset.

    State: ``{"calls": [[end_s, call_id, dest, prefix, international, cli, billsec_s, start_s,
    call_end_s, cost, priced, parallel], ...], "billsec": float, "answered": n, "by_prefix":
    {prefix: n}, "by_cli": {cli: n}, "by_parallel": {"peak": n}, "intl": n, "cost": float,
    "priced": n, "last_end_s": float, "ep": str | None}``, calls in end order, bounded by the window
    (:data:`CALLS`, at most :func:`detectors.window.entry_cap` calls; ``"calls_capped"``
    appears when that cap dropped some).

    Examples
    --------
    >>> from tollguard.testing import make_cdr
    >>> det = PremiumDestinationDetector()
    >>> ctx = CustomerContext("c1", country="IT", params={"premium_destination": PremiumDestinationParams()})
    >>> state = det.initial_state()
    >>> out = [d for i in range(3) for d in det.update(state, make_cdr(
    ...     call_id=f"p{i}", direction="outbound", caller="+390298765432", callee="+39899123456",
    ...     start_s=60 * i, end_s=60 * i + 30), ctx)]
    >>> [(str(d.type), d.level, str(d.scope_kind), d.scope_value) for d in out]
    [('alert', 'warning', 'destination_prefix', '+39899')]
    """

    name = "premium_destination"
    clause = "8.2"
    params_model = PremiumDestinationParams
    sees_calls_in_progress = True

    def initial_state(self) -> dict[str, Any]:
        return {
            "calls": [], "billsec": 0.0, "answered": 0, "by_prefix": {}, "by_cli": {}, "by_parallel": {}, "intl": 0,
            "cost": 0.0, "priced": 0, "last_end_s": 0.0, "ep": None,
        }

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        if cdr.direction is not Direction.OUTBOUND:
            return []
        params = self.params(ctx)
        info = classify(cdr.callee, ctx.country)
        dest = counted_destination(info, cdr.callee, ctx.allow_destinations)
        if dest is None or (prefix := _premium_range(info, dest, ctx, params)) is None:
            return []
        if "by_parallel" not in state:  # a state from before parallel calls: start afresh
            state.clear()
            state.update(self.initial_state())
        start_s, end_s = cdr.start.timestamp(), cdr.end.timestamp()
        now_s = max(end_s, state["last_end_s"])
        state["last_end_s"] = now_s
        CALLS.expire(state, now_s=now_s, window_s=params.window_s)
        cost = ctx.rates.cost(dest, cdr.billsec_s) if dest[:1] == "+" else None
        parallel = _peak_within(state["calls"], start_s, end_s)
        call = [now_s, cdr.call_id, dest, prefix, int(info.international), customer_number(cdr), cdr.billsec_s,
                start_s, end_s, cost or 0.0, int(cost is not None), str(parallel)]  # fmt: skip
        CALLS.add(state, call, max_entries=entry_cap(params.critical_attempts))
        return self._decide(state, now_s, ctx, params)

    def follows_in_progress(
        self, state: dict[str, Any], calls_up: list[CallDetailRecord], ctx: CustomerContext
    ) -> bool:
        """True when an outbound call up goes to a premium or high-risk range (it counts at call start)."""
        params = self.params(ctx)
        for cdr in calls_up:
            if cdr.direction is Direction.OUTBOUND:
                info = classify(cdr.callee, ctx.country)
                dest = counted_destination(info, cdr.callee, ctx.allow_destinations)
                if dest is not None and _premium_range(info, dest, ctx, params) is not None:
                    return True
        return False

    def advance(self, state: dict[str, Any], now_s: float, ctx: CustomerContext) -> list[Decision]:
        CALLS.expire(state, now_s=now_s, window_s=self.params(ctx).window_s)
        return []

    def reset(self, state: dict[str, Any], scope_kind: ScopeKind, scope_value: str) -> None:
        field = {
            ScopeKind.DESTINATION_PREFIX: _PREFIX,
            ScopeKind.OUTBOUND_INTERNATIONAL: _INTL,
            ScopeKind.CLI: _CLI,
        }.get(scope_kind)
        if field is None and scope_kind is not ScopeKind.ACCOUNT:
            return
        want: Any = 1 if field == _INTL else scope_value
        keep = [] if field is None else [c for c in state["calls"] if c[field] != want]
        last = state["last_end_s"]
        state.clear()
        state.update(self.initial_state(), last_end_s=last)
        for c in sorted(keep, key=lambda c: (c[_CALL_END], c[_END])):  # the peaks without the forgotten calls
            c = [*c[:_PAR], str(_peak_within(state["calls"], c[_START], c[_CALL_END]))]
            CALLS.add(state, c, max_entries=len(keep))  # all of them: they were within the cap

    def _decide(
        self, state: dict[str, Any], now_s: float, ctx: CustomerContext, params: PremiumDestinationParams
    ) -> list[Decision]:
        calls = state["calls"]
        attempts, minutes = len(calls), state["billsec"] / 60.0
        parallel = max(map(int, state["by_parallel"]), default=0)
        level: AlertLevel
        if (
            attempts >= params.critical_attempts
            or minutes >= params.critical_minutes
            or parallel >= params.critical_parallel_calls
        ):
            level = "critical"
            what = (
                f"{params.critical_attempts} calls, {params.critical_minutes:g} min or "
                f"{params.critical_parallel_calls} simultaneous calls"
            )
        elif attempts >= params.warn_attempts or minutes >= params.warn_minutes:
            level, what = "warning", f"{params.warn_attempts} calls or {params.warn_minutes:g} min"
        else:
            state["ep"] = None
            return []
        if state["ep"] is None:
            state["ep"] = iso(now_s)
        by_prefix, by_cli = state["by_prefix"], state["by_cli"]
        if len(by_prefix) == 1:
            kind, value = ScopeKind.DESTINATION_PREFIX, next(iter(by_prefix))
        elif state["intl"] == attempts:
            kind, value = ScopeKind.OUTBOUND_INTERNATIONAL, ctx.customer_id
        elif len(by_cli) == 1:
            kind, value = ScopeKind.CLI, next(iter(by_cli))
        else:
            kind, value = ScopeKind.ACCOUNT, ctx.customer_id
        latest = calls[-1]
        ranges = ", ".join(sorted(by_prefix)[:5]) + (", ..." if len(by_prefix) > 5 else "")
        at_once = f", up to {parallel} at once" if parallel > 1 else ""
        reason = (
            f"Customer {ctx.customer_id} made {attempts} calls ({minutes:.1f} answered min{at_once}) to "
            f"premium/high-risk numbers ({ranges}) in the last {params.window_s / 60:.0f} min, latest "
            f"{latest[_DEST]}; the {level} threshold is {what} (clause 8.2), so {scope_text(kind, value)} "
            + ("are suspended." if level == "critical" else "are flagged for review.")
        )
        evidence = {
            "attempts": attempts,
            "answered_calls": state["answered"],
            "answered_minutes": round(minutes, 3),
            "parallel_calls": parallel,
            "estimated_cost": round(state["cost"], 4) if state["priced"] else None,
            "currency": ctx.rates.currency,
            "by_prefix": dict(sorted(by_prefix.items())),
            "international_calls": state["intl"],
            "clis": len(by_cli),
            "window_s": params.window_s,
            "window_start": iso(calls[0][_END]),
            "thresholds": {
                "warn_attempts": params.warn_attempts,
                "warn_minutes": params.warn_minutes,
                "critical_attempts": params.critical_attempts,
                "critical_minutes": params.critical_minutes,
                "critical_parallel_calls": params.critical_parallel_calls,
            },
            "sample_call_ids": sample_ids(calls, params.sample_call_ids, _ID),
        }
        if CALLS.capped(state):
            evidence["capped_calls"] = CALLS.capped(state)
        return [
            level_decision(
                level, kind, value, episode=state["ep"], occurred_at_s=now_s, reason=reason, evidence=evidence
            )
        ]
