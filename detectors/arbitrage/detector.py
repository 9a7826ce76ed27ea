"""The ``arbitrage`` detector: routes each CDR to its three checks and keeps their windows swept."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from detectors.arbitrage import high_cost, pumping, reward
from detectors.arbitrage.params import ArbitrageParams
from detectors.base import CustomerContext, Decision, Detector
from tollguard.cdr import CallDetailRecord, Direction
from tollguard.events import ScopeKind
from tollguard.numbers import classify, counted_destination


class ArbitrageDetector(Detector[ArbitrageParams]):
    """Reward / auto top-up, inbound pumping and high-cost-minute arbitrage per customer.

    Every check keeps running sums over its window (O(1) amortised work per CDR): a
    call is in the window while ``end > now - window_s`` (``now`` = latest CDR end seen).
    Per-number and per-DID groups are dropped when their window empties (checked when
    touched, and by a sweep of all groups once per ``window_s`` of event time).

    State::

        {"last_end_s": float, "sweep_s": float, "hot": [number, ...],
         "reward": {number: reward group}, "pump": {did: pumping group},
         "pump_base": {did: usual load}, "hc": high-cost state}

    The groups are described in :mod:`detectors.arbitrage.reward` and
    :mod:`detectors.arbitrage.pumping`, the high-cost state in
    :mod:`detectors.arbitrage.high_cost`.

    Examples
    --------
    >>> from tollguard.testing import make_cdr
    >>> det = ArbitrageDetector()
    >>> ctx = CustomerContext("c1", country="IT", params={"arbitrage": ArbitrageParams()})
    >>> state = det.initial_state()
    >>> out = [d for i in range(16) for d in det.update(state, make_cdr(
    ...     call_id=f"r{i}", direction="outbound", caller="+390298765432", callee="+393331234567",
    ...     start_s=100 * i, end_s=100 * i + 45), ctx)]
    >>> [(str(d.type), str(d.scope_kind), d.scope_value, d.evidence["calls"]) for d in out][::5]
    [('alert', 'destination_prefix', '+393331234567', 10), ('suspension', 'destination_prefix', '+393331234567', 15)]
    """

    name = "arbitrage"
    clause = "8.2"
    params_model = ArbitrageParams
    sees_calls_in_progress = True
    #: On the calls in progress only the high-cost (IRSF) check runs: a call still up has no final
    #: length (reward's near-constant lengths) and inbound pumping is judged on its CDRs.
    in_progress_params: ClassVar[dict[str, Any]] = {"reward_enabled": False, "pumping_enabled": False}

    def initial_state(self) -> dict[str, Any]:
        return {"last_end_s": 0.0, "sweep_s": 0.0, "hot": [], "reward": {}, "pump": {}, "pump_base": {},
                "hc": high_cost.new_state()}

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        p = self.params(ctx)
        now_s = max(cdr.end.timestamp(), state["last_end_s"])
        state["last_end_s"] = now_s
        high_cost.close_hours(state["hc"], now_s, p)
        if now_s >= state["sweep_s"]:
            self._sweep(state, now_s, p)
        if cdr.direction is Direction.INBOUND:
            return pumping.check(state, cdr, now_s, ctx, p) if p.pumping_enabled else []
        if cdr.direction is not Direction.OUTBOUND or cdr.billsec_s <= 0:
            return []
        info = classify(cdr.callee, ctx.country)
        dest = counted_destination(info, cdr.callee, ctx.allow_destinations)
        if dest is None:
            return []
        out = reward.check(state, cdr, dest, now_s, ctx, p) if p.reward_enabled else []
        if p.high_cost_enabled and (where := high_cost.destination(info, p)) is not None:
            out += high_cost.check(state["hc"], cdr, where, now_s, ctx, p)
        return out

    def advance(self, state: dict[str, Any], now_s: float, ctx: CustomerContext) -> list[Decision]:
        if math.isfinite(now_s):
            p = self.params(ctx)
            high_cost.close_hours(state["hc"], now_s, p)
            if now_s >= state["sweep_s"]:
                self._sweep(state, now_s, p)
        return []

    def follows_in_progress(
        self, state: dict[str, Any], calls_up: list[CallDetailRecord], ctx: CustomerContext
    ) -> bool:
        """True when an outbound call up goes to a high-cost destination that can count (new, or listed)."""
        return bool(self._high_cost_up(state, calls_up, ctx)[0])

    def at_setup(
        self, state: dict[str, Any], calls_up: list[CallDetailRecord], now_s: float, ctx: CustomerContext
    ) -> list[Decision]:
        """The high-cost check at call setup (:func:`detectors.arbitrage.high_cost.setup_check`)."""
        up, intl_up = self._high_cost_up(state, calls_up, ctx)
        return high_cost.setup_check(state["hc"], up, intl_up, now_s, ctx, self.params(ctx)) if up else []

    def _high_cost_up(
        self, state: dict[str, Any], calls_up: list[CallDetailRecord], ctx: CustomerContext
    ) -> tuple[list[tuple[CallDetailRecord, str]], int]:
        """One pass over the calls up: those whose high-cost destination can count (with it), and how many
        outbound international calls are up."""
        p = self.params(ctx)
        if not p.high_cost_enabled:
            return [], 0
        out, intl_up = [], 0
        for cdr in calls_up:
            if cdr.direction is not Direction.OUTBOUND:
                continue
            info = classify(cdr.callee, ctx.country)
            if counted_destination(info, cdr.callee, ctx.allow_destinations) is None:
                continue
            intl_up += info.international
            where = high_cost.destination(info, p)
            if where is not None and high_cost.follows(state["hc"], where, cdr.end.timestamp(), p):
                out.append((cdr, where))
        return out, intl_up

    def reset(self, state: dict[str, Any], scope_kind: ScopeKind, scope_value: str) -> None:
        if scope_kind in (ScopeKind.ACCOUNT, ScopeKind.OUTBOUND_INTERNATIONAL):
            high_cost.reset(state["hc"])
        if scope_kind is ScopeKind.ACCOUNT:
            state["reward"], state["pump"], state["hot"] = {}, {}, []
        elif scope_kind is ScopeKind.DID:
            state["pump"].pop(scope_value, None)
        elif scope_kind is ScopeKind.DESTINATION_PREFIX:
            state["reward"].pop(scope_value, None)
        elif scope_kind is ScopeKind.CLI:
            state["reward"] = {d: g for d, g in state["reward"].items() if scope_value not in g["clis"]}
        state["hot"] = [d for d in state["hot"] if d in state["reward"]]

    @staticmethod
    def _sweep(state: dict[str, Any], now_s: float, p: ArbitrageParams) -> None:
        """Expire every group and drop the empty ones; runs once per ``window_s`` of event time."""
        for groups, window in ((state["reward"], reward.CALLS), (state["pump"], pumping.CALLS)):
            for name in list(groups):
                window.expire(groups[name], now_s=now_s, window_s=p.window_s)
                if not groups[name]["calls"]:
                    del groups[name]
        state["hot"] = [d for d in state["hot"] if d in state["reward"]]
        pumping.forget(state.setdefault("pump_base", {}), now_s)
        high_cost.expire(state["hc"], now_s, p)
        state["sweep_s"] = now_s + p.window_s
