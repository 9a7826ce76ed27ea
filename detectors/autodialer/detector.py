"""The ``autodialer`` detector: routes each outbound CDR into its CLI's windows and asks the checks.

The checks: :mod:`detectors.autodialer.burst` and :mod:`detectors.autodialer.sustained` (one
decision kind, ``autodialer``), :mod:`detectors.autodialer.wangiri` (fast and slow, ``wangiri``);
the windows and their running sums are :mod:`detectors.autodialer.attempts`'.
"""

from __future__ import annotations

from typing import Any

from detectors.autodialer import burst, sustained, wangiri
from detectors.autodialer.attempts import (
    CAMPAIGN,
    REG,
    SEQ,
    START,
    camp_cap,
    dialer_decision,
    evict,
    gap_cv,
    insert,
    measure,
    new_cli,
)
from detectors.autodialer.params import AutodialerParams
from detectors.base import AlertLevel, CustomerContext, Decision, Detector, customer_number
from tollguard.cdr import CallDetailRecord, Direction, Disposition
from tollguard.events import ScopeKind
from tollguard.numbers import classify, counted_destination

_LEVELS: dict[AlertLevel | None, int] = {None: 0, "warning": 1, "critical": 2}


class AutodialerDetector(Detector[AutodialerParams]):
    """Per-CLI attempt rates, five dialer signs and one-ring counts over a burst and a campaign window.

    State: ``{"clis": {cli: {...}}, "due_s": float | None}``; per CLI the burst window
    ``"att"`` (:data:`~detectors.autodialer.attempts.ATTEMPTS`) and the campaign window ``"camp"``
    (:data:`~detectors.autodialer.attempts.CAMPAIGN`) of attempts ``[start_s, callee_key, answered 0/1,
    billsec_s, one_ring 0/1, call_id, sequential 0/1, international 0/1]`` sorted by start (one list
    in both), their running sums (``ans``, ``bill``, ``ring1``; ``c_ans``, ``c_bill``, ``c_ring1``, ``c_seq``,
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
            entry = state["clis"][cli] = new_cli(start_s)
        horizon_s = max(p.window_s, p.sustained_window_s)
        if start_s <= entry["newest_s"] - horizon_s:
            return []  # started before this CLI's windows: no longer evidence
        entry["newest_s"] = max(entry["newest_s"], start_s)
        due = entry["newest_s"] + horizon_s
        state["due_s"] = due if state["due_s"] is None else min(state["due_s"], due)
        evict(entry, p)
        answered = cdr.answered
        one_ring = (
            not answered and cdr.disposition is Disposition.NO_ANSWER and cdr.duration_s <= p.one_ring_max_s
        )
        # E.164 digits (the rate table prices them, the block sweep steps through them); else the text
        key = dest[1:] if dest[:1] == "+" and dest[1:].isascii() and dest[1:].isdigit() else f"~{dest}"
        billsec = cdr.billsec_s if answered else 0.0
        attempt = [start_s, key, int(answered), billsec, int(one_ring), cdr.call_id, 0, int(info.international), 0]
        if start_s > entry["newest_s"] - p.window_s:
            attempt[SEQ] = insert(entry, attempt, p)
            att = entry["att"]
            cv = gap_cv(len(att), att[0][START], att[-1][START], entry["sq"])
            attempt[REG] = int(cv is not None and cv <= p.max_gap_cv)
        CAMPAIGN.add(entry, attempt, max_entries=camp_cap(p))
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
            level, m = burst.level(entry, p)
            if level != "critical":
                held, camp = sustained.level(entry, p)
                if _LEVELS[held] > _LEVELS[level]:
                    level, pace, m = held, "sustained", camp
        if level is not None and m is not None and _LEVELS[level] > _LEVELS[ep["dialer"]]:
            ep["dialer"] = level
            camp = camp or measure(entry, p, CAMPAIGN)
            reason = (burst if pace == "burst" else sustained).reason(cli, m, level, p)
            decisions.append(dialer_decision(cli, entry, m, camp, pace, level, p, ctx, end_s, start_s, reason))
        # Wangiri: the burst window's count, then the campaign window's
        ring_level = wangiri.burst_level(entry, p)
        ring_pace = "burst"
        if ring_level != "critical" and ep["wangiri"] != "critical" and wangiri.sustained_gate(entry, p):
            camp = camp or measure(entry, p, CAMPAIGN)
            if wangiri.sustained(entry, camp, p):
                ring_level, ring_pace = "critical", "sustained"
        if ring_level is not None and _LEVELS[ring_level] > _LEVELS[ep["wangiri"]]:
            ep["wangiri"] = ring_level
            camp = camp or measure(entry, p, CAMPAIGN)
            decisions.append(wangiri.decision(cli, entry, camp, ring_pace, ring_level, p, ctx, end_s, start_s))
        return decisions
