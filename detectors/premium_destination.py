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
count. Warning → ``alert`` (level ``warning``); critical → ``suspension`` (level
``critical``) with the narrowest scope the window's calls support:

1. ``destination_prefix`` when every call of the window shares one prefix (the
   high-risk prefix that matched, or ``+`` country code + the first
   ``range_national_digits`` national digits, e.g. ``+39899``; a short number is its own
   prefix);
2. else ``outbound_international`` (value: the customer id) when every call is international;
3. else ``cli`` when one CLI (``cdr.did``, else ``cdr.caller``) placed every call;
4. else ``account`` (value: the customer id).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from detectors.base import CustomerContext, Decision, Detector, DetectorParams, iso
from tollguard.cdr import CallDetailRecord, Direction
from tollguard.events import EventType, ScopeKind
from tollguard.numbers import NumberInfo, NumberType, classify, matches_prefix

#: Entry fields of ``state["calls"]`` (one list per call, JSON-serialisable).
_END, _ID, _DEST, _PREFIX, _INTL, _CLI, _BILLSEC = range(7)


class PremiumDestinationParams(DetectorParams):
    """Thresholds of ``premium_destination``: attempts and minutes fire at ``>=`` (inclusive).

    Notes
    -----
    Sources of the defaults: clause 8.2 forbids these calls outright, so the levels are
    small: 3 / 10 attempts and 30 answered minutes per hour are tollguard's operator
    defaults; ``warn_minutes`` 10 is a third of ``critical_minutes``. The number types
    are the ones clause 8.2 names, as libphonenumber's metadata types them.
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


def _allowed(dest: str, allow: tuple[str, ...]) -> bool:
    """True when ``dest`` (E.164 or a short number) is on the customer's allowlist."""
    if not allow:
        return False
    if dest.startswith("+"):
        return matches_prefix(dest, allow) is not None
    return dest in allow


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
        emergency, toll-free, allowlisted and ordinary numbers.
    """
    if info.is_emergency or info.number_type is NumberType.TOLL_FREE:
        return None
    e164 = info.e164
    prefix = matches_prefix(e164, ctx.high_risk_prefixes) if ctx.high_risk_prefixes else None
    if prefix is None:
        if info.number_type in params.premium_types and e164 and info.country_code:
            cc = str(info.country_code)
            prefix = "+" + cc + e164[1 + len(cc) : 1 + len(cc) + params.range_national_digits]
        elif params.short_premium and info.short_cost == "premium_rate" and info.e164 is None:
            prefix = callee.strip()
        else:
            return None
    if _allowed(e164 or callee.strip(), ctx.allow_destinations):
        return None
    return prefix


class PremiumDestinationDetector(Detector):
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

    State: ``{"calls": [[end_s, call_id, dest, prefix, international, cli, billsec_s],
    ...], "billsec": float, "answered": n, "by_prefix": {prefix: n}, "by_cli": {cli: n}, "intl": n,
    "last_end_s": float, "ep": str | None}``, calls in end order, bounded by the window.

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

    def initial_state(self) -> dict[str, Any]:
        return {
            "calls": [], "billsec": 0.0, "answered": 0, "by_prefix": {}, "by_cli": {}, "intl": 0,
            "last_end_s": 0.0, "ep": None,
        }

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        if cdr.direction is not Direction.OUTBOUND:
            return []
        params: PremiumDestinationParams = ctx.params[self.name]  # type: ignore[assignment]
        info = classify(cdr.callee, ctx.country)
        prefix = premium_prefix(info, cdr.callee, ctx, params)
        if prefix is None:
            return []
        now_s = max(cdr.end.timestamp(), state["last_end_s"])
        state["last_end_s"] = now_s
        self._prune(state, now_s - params.window_s)
        cli = cdr.did or cdr.caller
        dest = info.e164 or cdr.callee.strip()
        self._add(state, [now_s, cdr.call_id, dest, prefix, int(info.international), cli, cdr.billsec_s])
        return self._decide(state, now_s, ctx, params)

    def advance(self, state: dict[str, Any], now_s: float, ctx: CustomerContext) -> list[Decision]:
        params: PremiumDestinationParams = ctx.params[self.name]  # type: ignore[assignment]
        if state["calls"] and state["calls"][0][_END] <= now_s - params.window_s:
            self._prune(state, now_s - params.window_s)
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
        for c in keep:
            self._add(state, c)

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _add(state: dict[str, Any], c: list[Any]) -> None:
        state["calls"].append(c)
        state["billsec"] += c[_BILLSEC]
        state["answered"] += c[_BILLSEC] > 0
        state["by_prefix"][c[_PREFIX]] = state["by_prefix"].get(c[_PREFIX], 0) + 1
        state["by_cli"][c[_CLI]] = state["by_cli"].get(c[_CLI], 0) + 1
        state["intl"] += c[_INTL]

    @staticmethod
    def _prune(state: dict[str, Any], cutoff_s: float) -> None:
        """Drop calls that ended at or before ``cutoff_s``; O(expired) plus one slice."""
        calls = state["calls"]
        k = 0
        while k < len(calls) and calls[k][_END] <= cutoff_s:
            c = calls[k]
            state["billsec"] -= c[_BILLSEC]
            state["answered"] -= c[_BILLSEC] > 0
            for key, value in (("by_prefix", c[_PREFIX]), ("by_cli", c[_CLI])):
                left = state[key][value] - 1
                if left:
                    state[key][value] = left
                else:
                    del state[key][value]
            state["intl"] -= c[_INTL]
            k += 1
        if k:
            del calls[:k]
            if not calls:
                state["billsec"], state["ep"] = 0.0, None

    def _decide(
        self, state: dict[str, Any], now_s: float, ctx: CustomerContext, params: PremiumDestinationParams
    ) -> list[Decision]:
        calls = state["calls"]
        attempts, minutes = len(calls), state["billsec"] / 60.0
        if attempts >= params.critical_attempts or minutes >= params.critical_minutes:
            etype, level = EventType.SUSPENSION, "critical"
            what = (params.critical_attempts, params.critical_minutes)
        elif attempts >= params.warn_attempts or minutes >= params.warn_minutes:
            etype, level = EventType.ALERT, "warning"
            what = (params.warn_attempts, params.warn_minutes)
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
        reason = (
            f"Customer {ctx.customer_id} made {attempts} calls ({minutes:.1f} answered min) to "
            f"premium/high-risk numbers ({ranges}) in the last {params.window_s / 60:.0f} min, latest "
            f"{latest[_DEST]}; the {level} threshold is {what[0]} calls or {what[1]:g} min (clause 8.2), "
            f"so {kind} {value} is "
            + ("suspended." if etype is EventType.SUSPENSION else "flagged for review.")
        )
        evidence = {
            "attempts": attempts,
            "answered_calls": state["answered"],
            "answered_minutes": round(minutes, 3),
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
            },
            "sample_call_ids": [c[_ID] for c in calls[len(calls) - params.sample_call_ids :]],
        }
        return [
            Decision(
                type=etype,
                level=level,  # type: ignore[arg-type]
                scope_kind=kind,
                scope_value=value,
                episode=state["ep"],
                occurred_at_s=now_s,
                reason=reason,
                evidence=evidence,
            )
        ]
