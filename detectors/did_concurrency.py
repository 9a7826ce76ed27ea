"""``did_concurrency``: simultaneous calls per DID above capacity → ``capacity_increase`` (clause 6.1).

The contract guarantees each number (DID) at least 20 simultaneous calls and raises the
capacity automatically, within 30 days, when a DID exceeds it. This is billing, never a
suspension. The peak is exact to the second over inbound and outbound calls together;
a call ending at ``t`` and one starting at ``t`` do not overlap; exactly at capacity
is no event.

Because a CDR arrives when its call ends, the calls that overlap a moment ``t`` are all
known only once event time passed ``t + settle_s`` (calls longer than ``settle_s`` are
counted, but could arrive after the event). So a breach is reported ``settle_s`` of event
time after its peak, or at the end of a replay, with the real observed peak.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from pydantic import Field

from detectors.base import CustomerContext, Decision, Detector, DetectorParams, from_epoch, iso
from detectors.concurrency import add_call, peak_of, prune_calls
from tollguard.cdr import CallDetailRecord
from tollguard.events import EventType, ScopeKind


class DidConcurrencyParams(DetectorParams):
    """Thresholds of ``did_concurrency``."""

    default_capacity: int = Field(
        20, ge=1, le=100_000, description="simultaneous calls per DID unless the customer bought more (clause 6.1)"
    )
    capacity_step: int = Field(
        10, ge=1, le=1_000, description="proposed capacity = observed peak rounded up to this step"
    )
    raise_within_days: int = Field(30, ge=1, le=365, description="due_by = first exceeded + this (clause 6.1)")
    settle_s: float = Field(
        7200, ge=0, le=86_400, description="event time after a peak before it is final (longest call counted)"
    )
    count_unanswered: bool = Field(True, description="ringing, unanswered calls occupy a channel too")
    sample_call_ids: int = Field(10, ge=0, le=1_000, description="call ids kept as evidence")


class DidConcurrencyDetector(Detector[DidConcurrencyParams]):
    """Exact peak concurrency per DID, one ``capacity_increase`` per DID and capacity level.

    State: ``{"dids": {did: {"calls": [[start_s, end_s], ...], "cap": int | None,
    "pend": {...} | None}}, "last_end_s": float}``. ``cap`` is the capacity already
    proposed (the level reached), so a DID fires again only above that.

    Examples
    --------
    >>> from tollguard.testing import make_cdr
    >>> det, ctx = DidConcurrencyDetector(), CustomerContext("c1", params={"did_concurrency": DidConcurrencyParams()})
    >>> state = det.initial_state()
    >>> for i in range(21):
    ...     _ = det.update(state, make_cdr(call_id=f"c{i}", start_s=i, end_s=100 + i), ctx)
    >>> [d.extra["observed_peak"] for d in det.advance(state, float("inf"), ctx)]
    [21]
    """

    name = "did_concurrency"
    clause = "6.1"
    params_model = DidConcurrencyParams

    def initial_state(self) -> dict[str, Any]:
        return {"dids": {}, "last_end_s": 0.0, "due_s": 0.0}

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        params = self.params(ctx)
        end_s = cdr.end.timestamp()
        state["last_end_s"] = max(state["last_end_s"], end_s)
        if cdr.did is None or not (params.count_unanswered or cdr.answered):
            return []
        start_s = cdr.start.timestamp()
        entry = state["dids"].get(cdr.did)
        if entry is None:
            entry = state["dids"][cdr.did] = {"calls": [], "cap": None, "pend": None, "ids": []}
        prune_calls(entry["calls"], end_s - params.settle_s)
        profile = add_call(entry["calls"], start_s, end_s)
        capacity = max(ctx.capacity_of(cdr.did, params.default_capacity), entry["cap"] or 0)
        over = [(t, n) for t, n in profile if n > capacity]
        if over:
            peak_at, peak = max(over, key=lambda point: (point[1], -point[0]))
            pend = entry["pend"]
            if pend is None:
                entry["pend"] = pend = {"peak": 0, "peak_at": peak_at, "first": over[0][0], "capacity": capacity}
                state["due_s"] = min(state["due_s"], peak_at + params.settle_s)
            pend["first"] = min(pend["first"], over[0][0])
            if peak > pend["peak"]:
                pend["peak"], pend["peak_at"] = peak, peak_at
            ids = entry["ids"]
            if len(ids) < params.sample_call_ids and cdr.call_id not in ids:
                ids.append(cdr.call_id)
        return []

    def advance(self, state: dict[str, Any], now_s: float, ctx: CustomerContext) -> list[Decision]:
        params = self.params(ctx)
        if now_s < state["due_s"]:
            return []
        decisions: list[Decision] = []
        due_s = now_s + params.settle_s if math.isfinite(now_s) else 0.0  # JSON has no infinity
        for did, entry in list(state["dids"].items()):
            pend = entry["pend"]
            if pend is not None and now_s >= pend["peak_at"] + params.settle_s:
                decisions.append(self._decide(did, entry, pend, params, state["last_end_s"]))
                entry["cap"] = decisions[-1].extra["proposed_capacity"]
                entry["pend"], entry["ids"] = None, []
            elif pend is None and entry["cap"] is None and not entry["calls"]:
                del state["dids"][did]
            elif pend is None and entry["calls"] and entry["calls"][-1][1] < now_s - params.settle_s:
                entry["calls"].clear()
            if entry["pend"] is not None:
                due_s = min(due_s, entry["pend"]["peak_at"] + params.settle_s)
        state["due_s"] = due_s
        return decisions

    def reset(self, state: dict[str, Any], scope_kind: ScopeKind, scope_value: str) -> None:
        if scope_kind is ScopeKind.DID:
            state["dids"].pop(scope_value, None)

    def report(self, state: dict[str, Any], ctx: CustomerContext) -> list[dict[str, Any]]:
        """Per DID: ``{"did", "peak", "capacity", "proposed_capacity", "calls"}`` over the retained calls.

        ``peak`` is the exact simultaneous-call peak of the calls still held (the settle
        window), ``capacity`` the bought or contract capacity (clause 6.1), and
        ``proposed_capacity`` the capacity proposed by the last ``capacity_increase`` (or None).
        """
        params = self.params(ctx)
        return [
            {
                "did": did,
                "peak": peak_of(entry["calls"]),
                "capacity": ctx.capacity_of(did, params.default_capacity),
                "proposed_capacity": entry["cap"],
                "calls": len(entry["calls"]),
            }
            for did, entry in state["dids"].items()
        ]

    @staticmethod
    def _decide(
        did: str, entry: dict[str, Any], pend: dict[str, Any], params: DidConcurrencyParams, last_end_s: float
    ) -> Decision:
        peak, capacity = int(pend["peak"]), int(pend["capacity"])
        proposed = math.ceil(peak / params.capacity_step) * params.capacity_step
        first = from_epoch(pend["first"])
        due_by = first + timedelta(days=params.raise_within_days)
        return Decision(
            type=EventType.CAPACITY_INCREASE,
            level="billing",
            scope_kind=ScopeKind.DID,
            scope_value=did,
            episode=f"capacity>{capacity}",
            occurred_at_s=last_end_s,
            reason=(
                f"DID {did} carried {peak} simultaneous calls at {iso(pend['peak_at'])}, above its capacity of "
                f"{capacity} (clause 6.1); raise it to {proposed} by {due_by.date().isoformat()}."
            ),
            evidence={
                "observed_peak": peak,
                "capacity": capacity,
                "peak_at": iso(pend["peak_at"]),
                "first_exceeded_at": iso(pend["first"]),
                "sample_call_ids": list(entry["ids"]),
                "settle_s": params.settle_s,
            },
            extra={
                "did": did,
                "observed_peak": peak,
                "current_capacity": capacity,
                "proposed_capacity": proposed,
                "first_exceeded_at": first,
                "due_by": due_by,
            },
        )
