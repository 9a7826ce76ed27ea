"""``spend``: what a customer's outbound calls cost, over a rolling hour and a rolling day (clause 8.2, 8.6).

Carriers cap a customer's spend per day and per destination rate (Telnyx: a daily spend
limit; DIDWW: a rolling 24-hour limit; port5060: a default £50/day cap) because money is
what fraud is after, whatever the pattern: a hacked PBX pumping minutes to a revenue-share
range shows first as spend. Each answered outbound call is priced with the rules' rate
table (:class:`tollguard.rates.RateTable`: longest E.164 prefix, per minute and per call);
calls to unpriced destinations, emergency and toll-free numbers cost nothing here.

Two windows, each with a warning (alert) and a critical (suspension) level, in the rate
table's currency: the hour catches a fast attack within minutes, the day a slow one that
stays under the hourly level. The scope is the narrowest the spend supports: the
customer's outbound international calls when all of it is international, else the CLI
that carries most of it, else the account.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from detectors.base import CustomerContext, Decision, Detector, DetectorParams, iso, level_decision, scope_text
from detectors.window import Window, entry_cap, sample_ids
from tollguard.cdr import CallDetailRecord, Direction
from tollguard.events import ScopeKind
from tollguard.numbers import classify, counted_destination

# entry: [end_s, cost, cli, international (0/1), call_id, destination prefix]
_END, _COST, _CLI, _INTL, _ID, _PREFIX = range(6)

_WINDOWS: dict[str, Window] = {
    name: Window(
        f"{name}_calls",
        sums={f"{name}_cost": _COST, f"{name}_intl": lambda e, _s: e[_COST] if e[_INTL] else 0.0},
        tallies={f"{name}_by_cli": (_CLI, _COST), f"{name}_by_prefix": (_PREFIX, _COST)},
        on_empty={f"{name}_cost": 0.0, f"{name}_intl": 0.0, f"{name}_ep": None},
    )
    for name in ("hour", "day")
}
_SPAN_S = {"hour": 3600.0, "day": 86_400.0}


class SpendParams(DetectorParams):
    """Thresholds of ``spend``, in the rate table's currency; levels fire at ``>=``.

    Notes
    -----
    Sources of the defaults: carriers' daily caps (port5060's default £50/day, Telnyx and
    DIDWW daily and rolling 24-hour limits) and IRSF loss figures ($10k-100k a weekend,
    $160,000 in 30 hours from two hacked PBXs): a fast attack spends the hourly critical
    level in minutes; a customer's honest calls to the priced (premium and high-risk)
    ranges stay far below it. The example rate table prices only those ranges.
    """

    level_pairs: ClassVar[tuple[tuple[str, str], ...]] = (
        ("hour_warn", "hour_critical"), ("day_warn", "day_critical"),
    )

    hour_warn: float = Field(50.0, gt=0, le=10_000_000, description="spend in the last hour → alert")
    hour_critical: float = Field(200.0, gt=0, le=10_000_000, description="spend in the last hour → suspension")
    day_warn: float = Field(200.0, gt=0, le=10_000_000, description="spend in the last 24 h → alert (daily cap)")
    day_critical: float = Field(600.0, gt=0, le=10_000_000, description="spend in the last 24 h → suspension")
    cli_share: float = Field(
        0.8, ge=0.5, le=1.0, description="a CLI carrying at least this share of the spend is the suspended scope"
    )
    sample_call_ids: int = Field(5, ge=0, le=100, description="call ids kept as evidence")


class SpendDetector(Detector[SpendParams]):
    """Spend per customer over a rolling hour and day, priced by the rules' rate table.

    Examples
    --------
    Fourteen 10-minute answered calls to an Italian 899 number (EUR 1.50/min + 0.50/call in
    the example table): EUR 15.50 each, the hourly alert at the fourth (EUR 62), the
    suspension at the thirteenth (EUR 201.50).

    >>> from tollguard.testing import make_cdr
    >>> from tollguard.rules import rules_schema
    >>> ctx = rules_schema([SpendDetector])().context("c1")
    >>> det, state = SpendDetector(), SpendDetector().initial_state()
    >>> out = []
    >>> for i in range(14):
    ...     cdr = make_cdr(call_id=f"p{i}", direction="outbound", caller="+390212345678", did="+390212345678",
    ...                    callee="+39899123456", start_s=i * 60, end_s=i * 60 + 600)
    ...     out += [(d.level, d.scope_kind.value, d.evidence["estimated_cost"]) for d in det.update(state, cdr, ctx)]
    >>> out[0], out[9]
    (('warning', 'cli', 62.0), ('critical', 'cli', 201.5))
    """

    name = "spend"
    clause = "8.2"
    params_model = SpendParams
    sees_calls_in_progress = True

    def initial_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for name in _WINDOWS:
            state.update({f"{name}_calls": [], f"{name}_cost": 0.0, f"{name}_intl": 0.0, f"{name}_by_cli": {},
                          f"{name}_by_prefix": {}, f"{name}_ep": None})
        return state

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        end_s = cdr.end.timestamp()
        self._expire(state, end_s)
        if cdr.direction is not Direction.OUTBOUND or cdr.billsec_s <= 0:
            return []
        info = classify(cdr.callee, ctx.country)
        dest = counted_destination(info, cdr.callee, ctx.allow_destinations)
        found = ctx.rates.rate_of(dest) if dest is not None and dest.startswith("+") else None
        if dest is None or found is None:
            return []
        prefix, _rate = found
        cost = ctx.rates.cost(dest, cdr.billsec_s) or 0.0
        p = self.params(ctx)
        entry = [end_s, cost, cdr.caller, int(info.international), cdr.call_id, prefix]
        decisions = []
        for name, window in _WINDOWS.items():
            window.add(state, list(entry), max_entries=entry_cap())
            decision = self._judge(state, name, p, ctx, end_s)
            if decision is not None:
                decisions.append(decision)
        return decisions

    def follows_in_progress(
        self, state: dict[str, Any], calls_up: list[CallDetailRecord], ctx: CustomerContext
    ) -> bool:
        """True when an answered outbound call up is priced by the rate table (its cost accrues as it runs)."""
        for cdr in calls_up:
            if cdr.direction is Direction.OUTBOUND and cdr.billsec_s > 0:
                info = classify(cdr.callee, ctx.country)
                dest = counted_destination(info, cdr.callee, ctx.allow_destinations)
                if dest is not None and dest.startswith("+") and ctx.rates.rate_of(dest) is not None:
                    return True
        return False

    def advance(self, state: dict[str, Any], now_s: float, ctx: CustomerContext) -> list[Decision]:
        self._expire(state, now_s)
        return []

    def reset(self, state: dict[str, Any], scope_kind: ScopeKind, scope_value: str) -> None:
        for name, window in _WINDOWS.items():
            keep = [e for e in state[f"{name}_calls"]
                    if scope_kind is ScopeKind.CLI and e[_CLI] != scope_value]
            fresh = self.initial_state()
            for key in fresh:
                if key.startswith(name + "_"):
                    state[key] = fresh[key]
            for entry in keep:
                window.add(state, entry, max_entries=entry_cap())

    def report(self, state: dict[str, Any], ctx: CustomerContext) -> list[dict[str, Any]]:
        """The estimated cost of the customer's priced outbound calls, per window (NOC customer view).

        ``{"window": "hour" | "day", "window_s": s, "estimated_cost": float (2 decimals), "currency",
        "calls": priced calls in the window}``, as of the newest event time the detector has seen.
        """
        return [
            {"window": name, "window_s": _SPAN_S[name], "estimated_cost": round(state[f"{name}_cost"], 2),
             "currency": ctx.rates.currency, "calls": len(state[f"{name}_calls"])}
            for name in _WINDOWS
        ]

    def _expire(self, state: dict[str, Any], now_s: float) -> None:
        for name, window in _WINDOWS.items():
            window.expire(state, now_s=now_s, window_s=_SPAN_S[name])

    def _judge(
        self, state: dict[str, Any], name: str, p: SpendParams, ctx: CustomerContext, end_s: float
    ) -> Decision | None:
        spent = round(state[f"{name}_cost"], 2)
        warn, critical = (p.hour_warn, p.hour_critical) if name == "hour" else (p.day_warn, p.day_critical)
        if spent < warn:
            return None
        level: Literal["warning", "critical"] = "critical" if spent >= critical else "warning"
        if state[f"{name}_ep"] is None:
            state[f"{name}_ep"] = iso(end_s)
        by_cli = state[f"{name}_by_cli"]
        top_cli, top = max(by_cli.items(), key=lambda kv: (kv[1][1], kv[0]))
        if state[f"{name}_intl"] >= state[f"{name}_cost"] - 1e-9:
            kind, value = ScopeKind.OUTBOUND_INTERNATIONAL, ctx.customer_id
        elif top[1] >= p.cli_share * state[f"{name}_cost"]:
            kind, value = ScopeKind.CLI, top_cli
        else:
            kind, value = ScopeKind.ACCOUNT, ctx.customer_id
        currency = ctx.rates.currency
        prefixes = sorted(state[f"{name}_by_prefix"].items(), key=lambda kv: -kv[1][1])
        span = "hour" if name == "hour" else "24 hours"
        limit = critical if level == "critical" else warn
        reason = (
            f"Customer {ctx.customer_id} spent {currency} {spent:,.2f} on {len(state[f'{name}_calls'])} priced "
            f"outbound calls in the last {span} (most to {prefixes[0][0]}); the {level} level is {currency} "
            f"{limit:,.2f} (clause 8.2), so {scope_text(kind, value)} are "
            f"{'suspended' if level == 'critical' else 'flagged for review'}."
        )
        evidence = {
            "check": "spend",  # one episode per scope whichever window fired: the day alert joins the hour's
            "window": name,
            "estimated_cost": spent,
            "currency": currency,
            "window_s": _SPAN_S[name],
            "calls": len(state[f"{name}_calls"]),
            "by_prefix": {k: round(v[1], 2) for k, v in prefixes[:10]},
            "clis": sorted(by_cli)[:10],
            "thresholds": {"warn": warn, "critical": critical},
            "sample_call_ids": sample_ids(state[f"{name}_calls"], p.sample_call_ids, _ID),
        }
        return level_decision(level, kind, value, episode=f"{name}@{state[f'{name}_ep']}", occurred_at_s=end_s,
                              reason=reason, evidence=evidence)


