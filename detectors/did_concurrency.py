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

Outbound calls to emergency and toll-free numbers occupy no capacity here
(:mod:`detectors.never_evidence`): an incident's emergency calls are no need the customer pays
for. Inbound calls count whatever caller id they present (it can be spoofed).

**Capacity for fraud.** A DID can pass its capacity because it is being abused: a hacked PBX
running 30 lines to premium or revenue-share ranges, a pumped DID receiving long calls from a
few foreign ranges. Raising (and billing) that capacity would hand the fraudster more lines,
yet the contract owes the raise within 30 days, and this detector cannot see the fraud
checks' verdicts. So the event is still emitted, with the exact peak, but it says which of the
calls at the peak are fraud signs: outbound calls to premium-type numbers or the rules'
high-risk prefixes, outbound calls the rate table prices at ``suspect_min_per_min`` or more,
and inbound calls from abroad when they come from at most ``suspect_max_origin_ranges``
origin ranges (the pumping pattern). When the DID would have stayed within its capacity
without them, the evidence is marked ``fraud_suspected`` and the reason asks billing to hold
the raise until the fraud checks are verified (30 days leave ample time); ``estimated_cost``
(``currency``) is what those priced calls at the peak cost.
"""

from __future__ import annotations

import bisect
import math
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import Field

from detectors.base import CustomerContext, Decision, Detector, DetectorParams, from_epoch, iso
from detectors.concurrency import add_call, insert_call, peak_of, prune_calls
from tollguard.cdr import CallDetailRecord, Direction
from tollguard.events import EventType, ScopeKind
from tollguard.numbers import NumberType, classify, matches_prefix

#: Number types whose calls are premium evidence (``premium_destination``'s families).
_PREMIUM_TYPES = frozenset({NumberType.PREMIUM_RATE, NumberType.SHARED_COST, NumberType.PERSONAL_NUMBER})
# a suspect call: [start_s, end_s, class, cost or None]; class "premium", "rate" or "from:<origin range>"
_S, _E, _CLS, _COST = range(4)


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
    suspect_min_per_min: float = Field(
        0.25, ge=0, le=10_000,
        description="an outbound call the rate table prices at or above this a minute is a fraud sign at the peak "
        "(sip.us: default max $0.25/min a destination; port5060 blocks calls above 20p/min)",
    )  # fmt: skip
    suspect_max_origin_ranges: int = Field(
        5, ge=0, le=1_000,
        description="inbound calls from abroad at the peak from at most this many origin ranges are a pumping "
        "sign (issue 9: pumping from 1-5 ranges); 0: never",
    )  # fmt: skip
    origin_prefix_digits: int = Field(
        5, ge=1, le=15, description="caller digits after '+' naming an origin range (as arbitrage's pumping check)"
    )
    sample_call_ids: int = Field(10, ge=0, le=1_000, description="call ids kept as evidence")


class DidConcurrencyDetector(Detector[DidConcurrencyParams]):
    """Exact peak concurrency per DID, one ``capacity_increase`` per DID and capacity level.

    State: ``{"dids": {did: {"calls": [[start_s, end_s], ...], "cap": int | None,
    "pend": {...} | None, "ids": [call_id, ...], "suspect": [[start_s, end_s, class, cost], ...]}},
    "last_end_s": float, "due_s": float}``. ``cap`` is the capacity already proposed (the
    level reached), so a DID fires again only above that; ``suspect`` holds the calls that are
    fraud signs (class ``premium``, ``rate`` or ``from:<origin range>``), sorted by end, and
    ``pend["sus"]`` what they add up to at the pending peak.

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
    sees_calls_in_progress = True
    #: The calls up now are all known from their events: a peak over capacity is final at once.
    in_progress_params: ClassVar[dict[str, Any]] = {"settle_s": 0.0}

    def initial_state(self) -> dict[str, Any]:
        return {"dids": {}, "last_end_s": 0.0, "due_s": 0.0}

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        params = self.params(ctx)
        end_s = cdr.end.timestamp()
        state["last_end_s"] = max(state["last_end_s"], end_s)
        if cdr.did is None or not (params.count_unanswered or cdr.answered):
            return []
        never, suspect = self._suspect(cdr, ctx, params)
        if never:
            return []  # an emergency or toll-free call: never evidence, occupies no paid capacity
        start_s = cdr.start.timestamp()
        entry = state["dids"].get(cdr.did)
        if entry is None:
            entry = state["dids"][cdr.did] = {"calls": [], "cap": None, "pend": None, "ids": [], "suspect": []}
        sus = entry.setdefault("suspect", [])
        prune_calls(entry["calls"], end_s - params.settle_s)
        if sus and sus[0][_E] < end_s - params.settle_s:
            del sus[: bisect.bisect_left(sus, end_s - params.settle_s, key=_sus_end)]
        if suspect is not None:
            bisect.insort(sus, [start_s, end_s, *suspect], key=_sus_end)
        calls = entry["calls"]
        capacity = max(ctx.capacity_of(cdr.did, params.default_capacity), entry["cap"] or 0)
        if len(calls) < capacity:  # with this one at most ``capacity`` calls are kept: none can be over it
            insert_call(calls, start_s, end_s)
            return []
        profile = add_call(calls, start_s, end_s)
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
                pend["sus"] = _at_peak(sus, peak_at, params)
            ids = entry["ids"]
            if len(ids) < params.sample_call_ids and cdr.call_id not in ids:
                ids.append(cdr.call_id)
        return []

    def follows_in_progress(
        self, state: dict[str, Any], calls_up: list[CallDetailRecord], ctx: CustomerContext
    ) -> bool:
        """True when a DID has more calls up than its capacity (bought, or the last one proposed)."""
        params = self.params(ctx)
        up: dict[str, int] = {}
        for cdr in calls_up:
            if cdr.did is not None and (params.count_unanswered or cdr.answered):
                up[cdr.did] = up.get(cdr.did, 0) + 1
        for did, count in up.items():
            entry = state["dids"].get(did)
            if count > max(ctx.capacity_of(did, params.default_capacity), (entry or {}).get("cap") or 0):
                return True
        return False

    @staticmethod
    def _suspect(
        cdr: CallDetailRecord, ctx: CustomerContext, p: DidConcurrencyParams
    ) -> tuple[bool, list[Any] | None]:
        """(never evidence, ``[class, cost]`` for a fraud sign else None) of one call."""
        if cdr.direction is Direction.INBOUND:
            info = classify(cdr.caller, ctx.country)
            if info.international and info.e164 and p.suspect_max_origin_ranges:
                return False, [f"from:{info.e164[: p.origin_prefix_digits + 1]}", None]
            return False, None
        if cdr.direction is not Direction.OUTBOUND:
            return False, None
        info = classify(cdr.callee, ctx.country)
        if info.is_emergency or info.number_type is NumberType.TOLL_FREE:
            return True, None  # detectors.never_evidence
        number = info.e164
        found = ctx.rates.rate_of(number) if number else None
        cost = ctx.rates.cost(number, cdr.billsec_s) if number and found else None
        if info.number_type in _PREMIUM_TYPES or matches_prefix(number, ctx.high_risk_prefixes) is not None:
            return False, ["premium", cost]
        if found is not None and found[1].per_min >= p.suspect_min_per_min:
            return False, ["rate", cost]
        return False, None

    def advance(self, state: dict[str, Any], now_s: float, ctx: CustomerContext) -> list[Decision]:
        params = self.params(ctx)
        if now_s < state["due_s"]:
            return []
        decisions: list[Decision] = []
        due_s = now_s + params.settle_s if math.isfinite(now_s) else 0.0  # JSON has no infinity
        for did, entry in list(state["dids"].items()):
            pend = entry["pend"]
            if pend is not None and now_s >= pend["peak_at"] + params.settle_s:
                decisions.append(self._decide(did, entry, pend, params, state["last_end_s"], ctx))
                entry["cap"] = decisions[-1].extra["proposed_capacity"]
                entry["pend"], entry["ids"] = None, []
            elif pend is None and entry["cap"] is None and not entry["calls"]:
                del state["dids"][did]
            elif pend is None and entry["calls"] and entry["calls"][-1][1] < now_s - params.settle_s:
                entry["calls"].clear()
                entry["suspect"] = []
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
        did: str,
        entry: dict[str, Any],
        pend: dict[str, Any],
        params: DidConcurrencyParams,
        last_end_s: float,
        ctx: CustomerContext,
    ) -> Decision:
        peak, capacity = int(pend["peak"]), int(pend["capacity"])
        proposed = math.ceil(peak / params.capacity_step) * params.capacity_step
        first = from_epoch(pend["first"])
        due_by = first + timedelta(days=params.raise_within_days)
        sus = pend.get("sus") or _at_peak([], 0.0, params)
        suspected = sus["suspect"] > 0 and peak - sus["suspect"] <= capacity
        note = ""
        if suspected:
            signs = [f"{sus['premium']} to premium or high-risk numbers" if sus["premium"] else "",
                     f"{sus['rate']} to destinations priced at {ctx.rates.currency} "
                     f"{params.suspect_min_per_min:g}/min or more" if sus["rate"] else "",
                     f"{sus['foreign_inbound']} from {len(sus['origin_ranges'])} foreign origin range(s) "
                     f"({', '.join(sus['origin_ranges'])})" if sus["pumping"] else ""]
            note = (
                f" Fraud suspected: {sus['suspect']} of the calls at the peak are fraud signs "
                f"({'; '.join(x for x in signs if x)}) and without them the DID stays within its capacity: "
                "hold the raise until the fraud checks (clause 8.2) are verified."
            )
        return Decision(
            type=EventType.CAPACITY_INCREASE,
            level="billing",
            scope_kind=ScopeKind.DID,
            scope_value=did,
            episode=f"capacity>{capacity}",
            occurred_at_s=last_end_s,
            reason=(
                f"DID {did} carried {peak} simultaneous calls at {iso(pend['peak_at'])}, above its capacity of "
                f"{capacity} (clause 6.1); raise it to {proposed} by {due_by.date().isoformat()}." + note
            ),
            evidence={
                "observed_peak": peak,
                "capacity": capacity,
                "peak_at": iso(pend["peak_at"]),
                "first_exceeded_at": iso(pend["first"]),
                "sample_call_ids": list(entry["ids"]),
                "settle_s": params.settle_s,
                "fraud_suspected": suspected,
                "suspect_calls_at_peak": {k: sus[k] for k in ("premium", "rate", "foreign_inbound", "origin_ranges")},
                "peak_without_suspect_calls": peak - sus["suspect"],
                "estimated_cost": sus["cost"],
                "currency": ctx.rates.currency,
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


def _sus_end(call: list[Any]) -> float:
    return float(call[_E])


def _at_peak(sus: list[list[Any]], peak_at: float, p: DidConcurrencyParams) -> dict[str, Any]:
    """What the suspect calls covering the moment ``peak_at`` add up to (see the module doc)."""
    covering = [c for c in sus if c[_S] <= peak_at < c[_E]]
    premium = sum(1 for c in covering if c[_CLS] == "premium")
    rate = sum(1 for c in covering if c[_CLS] == "rate")
    foreign = [c[_CLS][5:] for c in covering if c[_CLS].startswith("from:")]
    ranges = sorted(set(foreign))
    pumping = bool(foreign) and len(ranges) <= p.suspect_max_origin_ranges
    priced = [c[_COST] for c in covering if c[_COST] is not None]
    return {
        "premium": premium,
        "rate": rate,
        "foreign_inbound": len(foreign),
        "origin_ranges": ranges[:10],
        "pumping": pumping,
        "suspect": premium + rate + (len(foreign) if pumping else 0),
        "cost": round(sum(priced), 2) if priced else None,
    }
