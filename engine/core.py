"""The detection engine shared by ``tollguard replay`` and the Faust worker.

Records arrive in *arrival* order (calls end, then their CDR is written). Per customer
the engine keeps a small reorder buffer: a CDR waits until the customer's event-time
watermark (newest CDR end seen minus ``allowed_lateness_s``) passes its end, then all
detectors see it, in (end, call_id) order. So the events do not depend on arrival
order within the allowed lateness, and replay and stream (which call this same code,
one customer's records on one worker) give the same events for the same input.

Legs of one call (same ``call_id``) are merged while they wait; a second delivery of a
row already seen counts once; a CDR later than the allowed lateness is refused with
its reason (replay writes it to the rejects file, the stream to the dead-letter topic).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from detectors.base import CustomerContext, Decision, Detector, level_decision
from engine.calls import apply_event, in_progress_rows, new_call, record_of
from engine.registry import build_detectors
from tollguard.calls import CallEvent, CallEventKind
from tollguard.cdr import CallDetailRecord, merge_legs
from tollguard.context import REPORT_ONLY, from_epoch, iso
from tollguard.errors import VerdictError
from tollguard.events import CoS, Event, EventType, Scope, ScopeKind, Verdict, event_id_for
from tollguard.rules import Rules

Status = Literal["accepted", "merged", "duplicate", "late", "completed"]

#: How long (s) a call still up is taken to last past the evaluation time in the view of the
#: calls in progress: a call that starts now is up now (a zero-length call overlaps nothing).
UP_EPSILON_S = 0.001

#: Shortest time (event time, s) a customer's emitted event ids are remembered, so none
#: repeats: a week, the longest detector window the rules accept (longer when the rules'
#: episode gap or an alert expiry is longer).
EMITTED_MEMORY_S = 7 * 86_400.0


@dataclass(slots=True)
class CustomerState:
    """Everything the engine keeps for one customer (one Faust table value).

    Attributes
    ----------
    customer_id : str
    max_end_s : float
        Newest CDR end seen (UTC epoch s); the watermark is this minus the lateness.
    pending : dict
        call_id -> merged record waiting for the watermark.
    heap : list of (end_s, call_id)
        Release order of ``pending`` (stale entries skipped on pop).
    seen : dict
        Leg key -> end_s of every row pending or released within the dedupe horizon.
    released : dict
        call_id -> end_s of calls already given to the detectors (dedupe horizon).
    detectors : dict
        Detector name -> that detector's state.
    open : dict
        Episode key -> {"event_id", "type", "detector", "scope_kind", "scope_value",
        "first_s", "last_s", "reason", "evidence", "updates", "status"}: events already
        emitted for a scope, so one episode gives one event; an active suspension keeps
        its latest evidence here until a verdict closes it.
    closed : dict
        Suspension event id -> the verdict that closed it (a second verdict is refused).
    """

    customer_id: str = ""
    max_end_s: float = float("-inf")
    pending: dict[str, CallDetailRecord] = field(default_factory=dict)
    heap: list[tuple[float, str]] = field(default_factory=list)
    seen: dict[str, float] = field(default_factory=dict)
    released: dict[str, float] = field(default_factory=dict)
    detectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    open: dict[str, dict[str, Any]] = field(default_factory=dict)
    closed: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Event id -> event time (UTC epoch s) of every event emitted for this customer in the
    #: last EMITTED_MEMORY_S: an id is never emitted twice, whatever the rules' windows and expiries.
    emitted: dict[str, float] = field(default_factory=dict)
    #: Min-heap of (end_s, 0 = seen / 1 = released, key), one per entry of ``seen`` and
    #: ``released``, so that forgetting costs the entries that expire, not a scan of both
    #: dicts per CDR. Not serialised: rebuilt when it does not match them.
    expiry: list[tuple[float, int, str]] = field(default_factory=list)
    #: Event time of the last pruning of ``emitted`` (not serialised: a restored state prunes at once).
    emitted_pruned_s: float = float("-inf")
    #: Calls known from call events and not yet completed by their CDR: call_id -> entry
    #: (:mod:`engine.calls`). Part of the stored state, so a restarted worker still knows them.
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Newest call-event time (UTC epoch s) and the event time of the last evaluation of the
    #: calls in progress.
    live_s: float = float("-inf")
    live_eval_s: float = float("-inf")
    #: Input position -> highest offset of it taken into this state (the stream: ``"cdrs[3]" -> 1234``), so
    #: a record re-delivered after a crash is known as such however old it is. Replay leaves it empty.
    positions: dict[str, int] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready form (for a Faust table); :meth:`from_json_dict` is its inverse."""
        return {
            "customer_id": self.customer_id,
            "max_end_s": self.max_end_s if self.max_end_s != float("-inf") else None,
            "pending": [cdr.to_json_dict() for cdr in self.pending.values()],
            "seen": self.seen,
            "released": self.released,
            "detectors": self.detectors,
            "open": self.open,
            "closed": self.closed,
            "emitted": self.emitted,
            "calls": self.calls,
            "live_s": self.live_s if self.live_s != float("-inf") else None,
            "live_eval_s": self.live_eval_s if self.live_eval_s != float("-inf") else None,
            "positions": self.positions,
        }

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> CustomerState:
        """Rebuild a state written by :meth:`to_json_dict`."""
        pending = {d["call_id"]: CallDetailRecord.model_validate(d) for d in data["pending"]}
        heap = [(cdr.end.timestamp(), cid) for cid, cdr in pending.items()]
        heapq.heapify(heap)
        max_end = data["max_end_s"]
        return cls(
            customer_id=data["customer_id"],
            max_end_s=float("-inf") if max_end is None else max_end,
            pending=pending,
            heap=heap,
            seen=dict(data["seen"]),
            released=dict(data["released"]),
            detectors=data["detectors"],
            open=data["open"],
            closed=data.get("closed", {}),
            emitted=dict(data.get("emitted", {})),
            calls=dict(data.get("calls") or {}),
            live_s=float("-inf") if data.get("live_s") is None else data["live_s"],
            live_eval_s=float("-inf") if data.get("live_eval_s") is None else data["live_eval_s"],
            positions=dict(data.get("positions", {})),
        )


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What happened to one record.

    ``accepted`` (a new call), ``merged`` (another leg of a waiting call, or a further event
    of a known call), ``duplicate`` (a row already seen: counted once, no effect), ``late``
    (refused) or ``completed`` (a call event of a call whose CDR was already taken: no effect).
    ``closed`` gives, for each call known from its events that this input closed without its
    end event, the reason (``engine.max_call_open_s`` passed, or the end of the input).
    """

    status: Status
    events: list[Event]
    reason: str | None = None
    closed: list[str] = field(default_factory=list)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Engine:
    """Runs every enabled detector over one customer's CDRs in event-time order.

    Parameters
    ----------
    rules : Rules
        Thresholds, customers, CoS and event-time settings.
    detectors : iterable of Detector, optional
        Defaults to every registered detector (``engine.registry.ALL_DETECTORS``).
    clock : callable, optional
        Wall clock for ``emitted_at`` only (decisions never read it).
    model : models.model.AnomalyModel, optional
        Trained anomaly model, given to the registered detectors that use one (``anomaly``);
        without it they emit nothing.
    """

    def __init__(
        self,
        rules: Rules,
        detectors: Iterable[Detector] | None = None,
        clock: Callable[[], datetime] = _utcnow,
        model: Any = None,
    ) -> None:
        self.detectors: list[Detector] = list(detectors) if detectors is not None else build_detectors(model)
        self.clock = clock
        self._contexts: dict[str, CustomerContext] = {}
        self._live_contexts: dict[str, tuple[CustomerContext, CustomerContext]] = {}
        self._max_open_s = rules.engine.max_call_open_s
        self._cdr_wait_s = rules.engine.cdr_wait_s
        self._live_interval_s = rules.engine.live_interval_s
        self._active: dict[str, tuple[CustomerContext, list[Detector], list[Detector]]] = {}
        #: customer -> the context its detectors last ran with, for customers not run since a rules change
        self._before: dict[str, CustomerContext] = {}
        #: entries dropped because a memory cap was reached, by what (the worker exports them as a metric)
        self.cap_hits: Counter[str] = Counter()
        #: detector states restarted because a rules change moved the detector's window, by detector
        self.window_restarts: Counter[str] = Counter()
        self.set_rules(rules)

    def set_rules(self, rules: Rules) -> None:
        """Make ``rules`` live from now on (a hot reload, ``replay --rules-change``); states are kept.

        Every customer's state (pending CDRs, dedupe memory, episodes, detectors' evidence)
        survives; events from now on carry ``rules.version``. A detector whose window
        (a ``*window_s`` threshold) changed for a customer starts its new window cleanly: its
        state for that customer is reset when the customer's next CDRs are released.
        """
        for customer_id, ctx in self._contexts.items():
            self._before.setdefault(customer_id, ctx)
        self.rules = rules
        self._contexts.clear()
        self._active.clear()
        self._lateness_s = rules.engine.allowed_lateness_s
        self._horizon_s = rules.engine.dedupe_horizon_s
        self._expiry_s = rules.engine.alert_expiry_s
        self._dedupe_cap = rules.engine.max_dedupe_calls
        self._emitted_memory_s = max(EMITTED_MEMORY_S, rules.engine.episode_gap_s, *self._expiry_s.values())

    def _restart_windows(self, state: CustomerState, before: CustomerContext, ctx: CustomerContext) -> None:
        """Reset the state of each detector whose window thresholds differ between ``before`` and ``ctx``."""
        for det in self.detectors:
            old, new = before.params.get(det.name), ctx.params.get(det.name)
            if old is None or new is None:
                continue
            windows = [f for f in type(new).model_fields if f.endswith("window_s")]
            if any(getattr(old, f, None) != getattr(new, f) for f in windows):
                state.detectors[det.name] = det.initial_state()
                self.window_restarts[det.name] += 1

    def context(self, customer_id: str) -> CustomerContext:
        """The customer's resolved rules (cached)."""
        ctx = self._contexts.get(customer_id)
        if ctx is None:
            ctx = self._contexts[customer_id] = self.rules.context(customer_id)
        return ctx

    def _enabled(self, ctx: CustomerContext) -> list[Detector]:
        """The detectors enabled for ``ctx``'s customer, in order (cached per context)."""
        return self._enabled_advancing(ctx)[0]

    def _enabled_advancing(self, ctx: CustomerContext) -> tuple[list[Detector], list[Detector]]:
        """The enabled detectors, and those of them whose :meth:`Detector.advance` is their own (cached per context).

        The base class's ``advance`` returns no decision and changes nothing, so it is not called.
        """
        hit = self._active.get(ctx.customer_id)
        if hit is None or hit[0] is not ctx:
            enabled = [d for d in self.detectors if ctx.params[d.name].enabled]
            advancing = [d for d in enabled if type(d).advance is not Detector.advance]
            hit = self._active[ctx.customer_id] = (ctx, enabled, advancing)
        return hit[1], hit[2]

    def new_state(self, customer_id: str) -> CustomerState:
        """A fresh state for ``customer_id`` with every detector's initial state."""
        return CustomerState(customer_id=customer_id, detectors={d.name: d.initial_state() for d in self.detectors})

    def ingest(self, state: CustomerState, cdr: CallDetailRecord) -> IngestResult:
        """Take one arriving CDR of ``state``'s customer; return its fate and any events.

        A record is ``late`` (refused, with the reason) when it ended more than the
        allowed lateness before the newest CDR of its customer, and ``duplicate``
        (counted once, no effect) when the same row was already seen.
        """
        end_s = cdr.end.timestamp()
        leg_key = f"{cdr.call_id}\x1f{cdr.leg_id or cdr.call_id}"
        if leg_key in state.seen:
            return IngestResult("duplicate", [], f"duplicate delivery of call {cdr.call_id}")
        watermark_s = state.max_end_s - self._lateness_s
        if cdr.call_id in state.released or end_s < watermark_s:
            behind = state.max_end_s - end_s
            return IngestResult(
                "late",
                [],
                f"late CDR: call {cdr.call_id} ended at {iso(end_s)}, {behind:.0f} s before the newest CDR of "
                f"customer {cdr.customer_id} (allowed lateness {self._lateness_s:.0f} s)",
            )
        state.calls.pop(cdr.call_id, None)  # its CDR completes a call known from its events
        state.seen[leg_key] = end_s
        heapq.heappush(state.expiry, (end_s, 0, leg_key))
        held = state.pending.get(cdr.call_id)
        merged = cdr if held is None else merge_legs(held, cdr)
        state.pending[cdr.call_id] = merged
        heapq.heappush(state.heap, (end_s if held is None else merged.end.timestamp(), cdr.call_id))
        events: list[Event] = []
        if end_s > state.max_end_s:
            state.max_end_s = end_s
            events = self._release(state, state.max_end_s - self._lateness_s)
        return IngestResult("accepted" if held is None else "merged", events)

    def flush(self, state: CustomerState) -> list[Event]:
        """End of input: release every waiting CDR and let detectors close what is open.

        Calls known from their events and not completed by a CDR are given to the detectors
        as the records their events make; a call still up is closed at the customer's newest
        event time.
        """
        if state.calls:
            self._close_calls(state, float("inf"))
        return self._release(state, float("inf"))

    # -- calls in progress (DESIGN §3b) ---------------------------------------------------------
    def ingest_call(self, state: CustomerState, event: CallEvent) -> IngestResult:
        """Take one call event of ``state``'s customer, in arrival order; return its fate and any events.

        The call is known from its first event; its CDR, when it comes, completes it (an event
        of a call whose CDR was taken is ``completed``: no effect). The first event of a call that
        is older than the allowed lateness before the customer's newest record is ``late``
        (refused with the reason, as a late CDR): its CDR may be taken and forgotten already. The event's time moves the
        customer's event time (as a CDR's end does); then calls whose CDR is no longer awaited
        (``engine.cdr_wait_s`` after their end) or that stayed open ``engine.max_call_open_s``
        are given to the detectors as the records their events make, and the calls in progress
        are evaluated (:meth:`_in_progress`) when a call is first seen up (its start, or its
        answer where the switch reports no start), and otherwise at most every
        ``engine.live_interval_s`` of event time (minutes and cost accruing, answers).
        """
        call_id = event.call_id
        if call_id in state.released or call_id in state.pending:
            return IngestResult("completed", [], f"call {call_id} was already completed by its CDR")
        at_s = event.at.timestamp()
        call = state.calls.get(call_id)
        if call is None and at_s < state.max_end_s - self._lateness_s:
            # A call unknown here whose event is older than the reorder window: its CDR may have been
            # taken and forgotten already (a file of events sent after the CDRs): counting it now as a
            # call in progress would invent concurrency. Refused like a late CDR, with the reason.
            behind = state.max_end_s - at_s
            return IngestResult(
                "late", [],
                f"late call event: {event.event} of call {call_id} at {iso(at_s)}, {behind:.0f} s before the newest "
                f"record of customer {state.customer_id} (allowed lateness {self._lateness_s:.0f} s)",
            )
        if call is None:
            call = state.calls[call_id] = new_call(event)
            apply_event(call, event)
            status: Status = "accepted"
            changed = True
        else:
            changed = apply_event(call, event)
            status = "merged" if changed else "duplicate"
        now_s = max(state.live_s, at_s)
        state.live_s = now_s
        closed = self._close_calls(state, now_s)
        events: list[Event] = []
        if at_s > state.max_end_s:
            state.max_end_s = at_s
            events = self._release(state, at_s - self._lateness_s)
        elif closed:
            events = self._release(state, state.max_end_s - self._lateness_s)
        new_call_up = status == "accepted" and event.event is not CallEventKind.END  # a call attempt seen first
        if new_call_up or now_s >= state.live_eval_s + self._live_interval_s:
            events += self._in_progress(state, now_s)
        return IngestResult(status, events, closed=closed)

    def _close_calls(self, state: CustomerState, now_s: float) -> list[str]:
        """Give the detectors (through the reorder buffer) the calls done waiting; the reasons of forced closes."""
        reasons: list[str] = []
        final = not math.isfinite(now_s)
        for call_id, call in list(state.calls.items()):
            end_s = call["end"]
            if end_s is not None:
                if not final and end_s + self._cdr_wait_s > now_s:
                    continue
            elif final:
                call["end"] = max(call["start"], state.live_s)
                reasons.append(
                    f"call {call_id} of customer {state.customer_id} closed at {iso(call['end'])}: still up at the "
                    "end of the input"
                )
            elif call["start"] + self._max_open_s <= now_s:
                call["end"] = call["start"] + self._max_open_s
                reasons.append(
                    f"call {call_id} of customer {state.customer_id} closed at {iso(call['end'])}: no end event "
                    f"{self._max_open_s:.0f} s after its start (engine.max_call_open_s)"
                )
            else:
                continue
            del state.calls[call_id]
            self._admit(state, record_of(call_id, state.customer_id, call))
        return reasons

    def _admit(self, state: CustomerState, cdr: CallDetailRecord) -> None:
        """Put the record a call's events made into the reorder buffer (it is never late: its CDR never came)."""
        end_s = cdr.end.timestamp()
        leg_key = f"{cdr.call_id}\x1f{cdr.call_id}"
        state.seen[leg_key] = end_s
        heapq.heappush(state.expiry, (end_s, 0, leg_key))
        state.pending[cdr.call_id] = cdr
        heapq.heappush(state.heap, (end_s, cdr.call_id))

    def _in_progress_context(self, ctx: CustomerContext) -> CustomerContext:
        """``ctx`` with the detectors' :attr:`Detector.in_progress_params` applied (cached per context)."""
        hit = self._live_contexts.get(ctx.customer_id)
        if hit is None or hit[0] is not ctx:
            params = dict(ctx.params)
            for det in self.detectors:
                if det.in_progress_params and det.name in params:
                    params[det.name] = params[det.name].model_copy(update=det.in_progress_params)
            hit = self._live_contexts[ctx.customer_id] = (ctx, dataclasses.replace(ctx, params=params))
        return hit[1]

    def _in_progress(self, state: CustomerState, now_s: float) -> list[Event]:
        """Decisions on the calls in progress at event time ``now_s`` (DESIGN §3b).

        The detectors that see calls in progress (:attr:`Detector.sees_calls_in_progress`) and
        find one of the calls still up worth following (:meth:`Detector.follows_in_progress`:
        e.g. a premium or high-cost destination, a DID above its capacity) run on a copy of
        their state that also takes, in end order, the CDRs still waiting in the reorder buffer
        and the records of the calls known from events (a call still up ends ``now_s`` +
        :data:`UP_EPSILON_S`, its talk time counted so far), then event time ``now_s``, then
        :meth:`Detector.at_setup` with the calls still up. Their decisions go through the same
        episodes as the CDRs' (a scope is not suspended twice, an event id never emitted twice);
        the copy is dropped, so each call is folded into the detectors' own state once, by its
        CDR. An event emitted here says so in ``evidence["calls_up_when_decided"]`` (the calls
        still up then): its figures are those known at that moment (a ``capacity_increase``'s
        ``observed_peak`` is the peak so far; the episode's true peak follows when its CDRs
        settle it, see :meth:`_raised_capacity`).
        """
        state.live_eval_s = now_s
        if not state.calls:
            return []
        ctx = self.context(state.customer_id)
        candidates = [d for d in self._enabled(ctx) if d.sees_calls_in_progress]
        if not candidates:
            return []
        live_ctx = self._in_progress_context(ctx)
        up_to_s = now_s + UP_EPSILON_S
        view = list(state.pending.values())
        calls_up: list[CallDetailRecord] = []
        for call_id, call in state.calls.items():
            if call["end"] is None:
                calls_up.append(record_of(call_id, state.customer_id, call, up_to_s))
            else:
                view.append(record_of(call_id, state.customer_id, call))
        if not calls_up:
            return []  # nothing in progress: the ended calls are judged by their CDRs (or their events' records)
        active = [
            d for d in candidates
            if d.follows_in_progress(state.detectors.setdefault(d.name, d.initial_state()), calls_up, live_ctx)
        ]
        if not active:
            return []
        view.extend(calls_up)
        view.sort(key=lambda cdr: (cdr.end, cdr.call_id))
        copies = orjson.loads(orjson.dumps({d.name: state.detectors[d.name] for d in active}))
        decisions: list[tuple[Detector, Decision]] = []
        for cdr in view:
            for det in active:
                found = det.update(copies[det.name], cdr, live_ctx)
                if found:
                    decisions.extend((det, d) for d in found)
        for det in active:
            found = det.advance(copies[det.name], up_to_s, live_ctx) + det.at_setup(
                copies[det.name], calls_up, up_to_s, live_ctx)
            if found:
                decisions.extend((det, d) for d in found)
        events = self._to_events(state, ctx, decisions, live=True)
        for event in events:  # its figures (a capacity_increase's observed_peak) are those known so far
            event.evidence["calls_up_when_decided"] = len(calls_up)
        return events

    def calls_in_progress(self, state: CustomerState) -> list[dict[str, Any]]:
        """The customer's calls still up (known from call events, no end yet), oldest first (``GET /v1/calls``)."""
        return in_progress_rows(state.calls, state.customer_id)

    def _release(self, state: CustomerState, watermark_s: float) -> list[Event]:
        if not state.pending and state.max_end_s == float("-inf"):
            return []
        ctx = self.context(state.customer_id)
        if self._before:  # the rules changed since this customer last ran
            before = self._before.pop(state.customer_id, None)
            if before is not None:
                self._restart_windows(state, before, ctx)
        if len(state.detectors) < len(self.detectors):  # a state stored before a detector was added
            for det in self.detectors:
                state.detectors.setdefault(det.name, det.initial_state())
        active, advancing = self._enabled_advancing(ctx)
        dstates = state.detectors
        decisions: list[tuple[Detector, Decision]] = []
        heap, pending, released, expiry = state.heap, state.pending, state.released, state.expiry
        heappop, heappush = heapq.heappop, heapq.heappush
        while heap and heap[0][0] <= watermark_s:
            end_s, call_id = heappop(heap)
            cdr = pending.get(call_id)
            if cdr is None or cdr.end.timestamp() != end_s:
                continue  # stale entry of a call whose merged end moved later
            del pending[call_id]
            released[call_id] = end_s
            heappush(expiry, (end_s, 1, call_id))
            for det in active:
                found = det.update(dstates[det.name], cdr, ctx)
                if found:
                    decisions.extend((det, d) for d in found)
        for det in advancing:
            found = det.advance(dstates[det.name], watermark_s, ctx)
            if found:
                decisions.extend((det, d) for d in found)
        events = self._to_events(state, ctx, decisions) if decisions else []
        self._forget(state, watermark_s, ctx)
        return events

    def _forget(self, state: CustomerState, watermark_s: float, ctx: CustomerContext | None = None) -> None:
        """Drop dedupe memory older than the horizon and closed alert episodes (bounded memory)."""
        cut_s = watermark_s - self._horizon_s
        seen, released, expiry = state.seen, state.released, state.expiry
        over = len(seen) + len(released) > self._dedupe_cap
        if released and (len(released) > 64 or over):
            if len(expiry) != len(seen) + len(released):  # a restored state: index it once
                expiry[:] = [(v, 0, k) for k, v in seen.items()] + [(v, 1, k) for k, v in released.items()]
                heapq.heapify(expiry)
            # drop every entry older than the horizon, then the oldest while above the cap
            while expiry and (expiry[0][0] < cut_s or len(seen) + len(released) > self._dedupe_cap):
                end_s, which, key = heapq.heappop(expiry)
                if (released if which else seen).get(key) == end_s:
                    del (released if which else seen)[key]
                    if end_s >= cut_s:
                        self.cap_hits["dedupe_calls"] += 1
        if ctx is None:
            ctx = self.context(state.customer_id)
        stale = [
            k for k, o in state.open.items()
            if o["type"] != EventType.SUSPENSION and o["last_s"] < watermark_s - self._open_for_s(ctx, o)
        ]
        for k in stale:
            del state.open[k]
        if len(state.emitted) > 256 and math.isfinite(watermark_s) and watermark_s - state.emitted_pruned_s >= 3600:
            # at most one scan of the emitted ids an hour of event time, not one per released CDR
            state.emitted_pruned_s = watermark_s
            old = watermark_s - self._emitted_memory_s
            for eid in [e for e, at_s in state.emitted.items() if at_s < old]:
                del state.emitted[eid]

    def _to_events(
        self, state: CustomerState, ctx: CustomerContext, decisions: list[tuple[Detector, Decision]],
        live: bool = False,
    ) -> list[Event]:
        """The new events of ``decisions`` (``live``: decided on the calls in progress), episodes kept in ``state``."""
        events: list[Event] = []
        for det, dec in decisions:
            # one episode per detector check and scope (e.g. arbitrage's reward and pumping checks apart)
            where = f"{det.name}|{dec.scope_kind}|{dec.scope_value}|{dec.check}"
            key = f"{dec.type}|{where}"
            trial = report_only(ctx, det.name)
            if dec.type is not EventType.CAPACITY_INCREASE:
                suspended = _same_mode(state.open.get(f"{EventType.SUSPENSION}|{where}"), trial)
                if suspended is not None and dec.type is EventType.ALERT:
                    suspended["last_s"] = max(suspended["last_s"], dec.occurred_at_s)
                    continue
                held = _same_mode(state.open.get(key), trial)
                if held is not None and (
                    dec.type is EventType.SUSPENSION
                    or dec.occurred_at_s - held["last_s"] <= self.alert_expiry_s(ctx, det.name)
                ):
                    held["last_s"] = max(held["last_s"], dec.occurred_at_s)
                    held["evidence"], held["reason"] = dec.evidence, dec.reason
                    held["updates"] += 1
                    continue
            if dec.type in (EventType.SUSPENSION, EventType.ALERT):
                cover = _covering_suspension(state, dec, trial)
                if cover is not None:  # the scope is already suspended: corroborate, do not suspend it twice
                    cover["last_s"] = max(cover["last_s"], dec.occurred_at_s)
                    if dec.type is EventType.SUSPENSION:
                        cover.setdefault("corroborated_by", {})[det.name] = {
                            "at": iso(dec.occurred_at_s), "reason": dec.reason}
                        cover["updates"] += 1
                    continue
            event = self._event(det, dec, ctx, trial)
            if event.event_id in state.emitted:
                raised = self._raised_capacity(state, key, dec, live)
                if raised is None:
                    continue  # the detector still reports an episode already emitted: never the same id twice
                dec, event = raised, self._event(det, raised, ctx)
                if event.event_id in state.emitted:
                    continue
            state.emitted[event.event_id] = dec.occurred_at_s
            if dec.type is EventType.CAPACITY_INCREASE and "proposed_capacity" in dec.extra:
                state.open[f"proposed|{key}"] = {
                    "event_id": event.event_id, "type": str(dec.type), "detector": det.name,
                    "scope_kind": str(dec.scope_kind), "scope_value": dec.scope_value, "first_s": dec.occurred_at_s,
                    "last_s": dec.occurred_at_s, "proposed": dec.extra["proposed_capacity"], "status": "proposed",
                    "peak": dec.extra.get("observed_peak"), "live": live,
                }  # fmt: skip
            if dec.type is not EventType.CAPACITY_INCREASE:
                state.open[key] = {
                    **({"report_only": True} if trial else {}),
                    "event_id": event.event_id,
                    "type": str(dec.type),
                    "detector": det.name,
                    "scope_kind": str(dec.scope_kind),
                    "scope_value": dec.scope_value,
                    "first_s": dec.occurred_at_s,
                    "last_s": dec.occurred_at_s,
                    "reason": dec.reason,
                    "evidence": dec.evidence,
                    "updates": 0,
                    "status": "active",
                }
            events.append(event)
            if dec.type is EventType.SUSPENSION and dec.scope_kind is not ScopeKind.ACCOUNT:
                events.extend(self._maybe_widen(state, ctx, det, dec))
        return events

    @staticmethod
    def _raised_capacity(state: CustomerState, key: str, dec: Decision, live: bool) -> Decision | None:
        """A capacity increase whose episode was already emitted, re-keyed when it says more; else None.

        Only the calls-in-progress view decides one episode twice: its copy of the detector's
        state does not keep the capacity the first event proposed, and it decides as soon as
        the DID is over capacity, when the peak may still rise. So:

        * a proposed capacity above the one already proposed is a new proposal (a new event,
          episode suffixed ``>capacity``), from either view;
        * when the CDRs settle (``settle_s``) an episode first emitted from the calls in
          progress, and its true peak is higher than the one that event reported, one final
          event gives the true ``observed_peak`` (episode suffixed ``>capacity=peak``;
          ``evidence["final_peak_of"]`` names the first event), so billing sees the episode's
          real peak (issue 10).
        """
        held = state.open.get(f"proposed|{key}")
        if held is None or dec.type is not EventType.CAPACITY_INCREASE or "proposed_capacity" not in dec.extra:
            return None
        proposed = dec.extra["proposed_capacity"]
        if proposed > held["proposed"]:
            return dataclasses.replace(dec, episode=f"{dec.episode}>{proposed}")
        peak, reported = dec.extra.get("observed_peak"), held.get("peak")
        if not live and held.get("live") and peak is not None and reported is not None and peak > reported:
            same = proposed == held["proposed"]
            reason = (
                f"{dec.reason} This is the episode's true peak: event {held['event_id']} reported {reported} "
                f"at {iso(held['first_s'])} while its calls were still up"
                + ("; the proposed capacity is the same, so it is one raise, not two." if same else ".")
            )
            return dataclasses.replace(dec, episode=f"{dec.episode}>{proposed}=peak", reason=reason,
                                       evidence={**dec.evidence, "final_peak_of": held["event_id"]})
        return None

    def _open_for_s(self, ctx: CustomerContext, entry: dict[str, Any]) -> float:
        """Event time (s) after its last evidence at which an open episode entry is forgotten.

        :meth:`alert_expiry_s`; a capacity proposal emitted from the calls in progress is kept
        ``settle_s`` longer, until its CDRs settle the episode (its true peak, :meth:`_raised_capacity`).
        """
        keep = self.alert_expiry_s(ctx, entry["detector"])
        if entry.get("live"):
            keep += float(getattr(ctx.params.get(entry["detector"]), "settle_s", 0.0) or 0.0)
        return keep

    def alert_expiry_s(self, ctx: CustomerContext, detector: str) -> float:
        """Event time (s) after its last evidence at which a warning-level alert closes.

        The rules' ``engine.alert_expiry_s`` for the detector (default ``episode_gap_s``), but
        never shorter than the customer's window of that detector: an alert closed while its
        evidence is still in the window would fire again for the same episode.
        """
        configured = self._expiry_s.get(detector, self.rules.engine.episode_gap_s)
        params = ctx.params.get(detector)
        return max(configured, float(getattr(params, "window_s", 0.0) or 0.0))

    def _maybe_widen(self, state: CustomerState, ctx: CustomerContext, det: Detector, dec: Decision) -> list[Event]:
        """Suspend the whole account once enough narrow scopes are suspended, where the rules say so."""
        limit = self.rules.engine.widen_to_account_after
        trial = report_only(ctx, det.name)
        active = [o for o in state.open.values() if o["type"] == EventType.SUSPENSION and o["status"] == "active"
                  and o.get("report_only", False) == trial]
        if not limit or any(o["scope_kind"] == ScopeKind.ACCOUNT for o in active) or len(active) < limit:
            return []
        scopes = sorted(f"{o['scope_kind']}:{o['scope_value']}" for o in active)
        wide = level_decision(
            "critical",
            ScopeKind.ACCOUNT,
            ctx.customer_id,
            episode=dec.episode,
            occurred_at_s=dec.occurred_at_s,
            reason=(
                f"{len(active)} narrow suspensions are active for customer {ctx.customer_id} "
                f"(rules: widen to the account at {limit}); the whole account is suspended (clause 8.6)."
            ),
            evidence={"suspended_scopes": scopes, "widen_to_account_after": limit},
            clause="8.6",
        )
        return self._to_events(state, ctx, [(det, wide)])

    def apply_verdict(self, state: CustomerState, verdict: Verdict) -> list[Event]:
        """Apply a verification verdict on one of ``state``'s suspensions (clauses 8.6, 13.1).

        ``cleared`` → a ``reactivation`` naming the suspension; the detector forgets the
        evidence behind that scope so it does not fire again on it. ``confirmed`` → a
        second ``suspension`` event marked ``termination_recommended`` (the service stays
        suspended).

        Raises
        ------
        VerdictError
            The suspension is unknown to this customer or already closed by a verdict.
        """
        sid = verdict.suspension_event_id
        if sid in state.closed:
            done = state.closed[sid]
            raise VerdictError(
                f"suspension {sid} is already closed: {done['verdict']} by {done['by']} at {done['at']}"
            )
        key, entry = next(
            ((k, o) for k, o in state.open.items() if o["event_id"] == sid and o["type"] == EventType.SUSPENSION),
            (None, None),
        )
        if key is None or entry is None:
            raise VerdictError(f"unknown suspension {sid} for customer {state.customer_id}")
        if verdict.at.timestamp() < entry["first_s"]:
            raise VerdictError(
                f"verdict at {verdict.at.isoformat()} is before suspension {sid} it judges "
                f"(suspended at {iso(entry['first_s'])})"
            )
        det = next(d for d in self.detectors if d.name == entry["detector"])
        scope = Scope(kind=entry["scope_kind"], value=entry["scope_value"])
        at = verdict.at
        state.closed[sid] = {"verdict": verdict.verdict, "by": verdict.by, "at": at.isoformat()}
        common: dict[str, Any] = {
            "detector": det.name,
            "customer_id": state.customer_id,
            "scope": scope,
            "occurred_at": at,
            "emitted_at": self.clock(),
            "rules_version": self.rules.version,
            "suspension_event_id": sid,
            "report_only": bool(entry.get("report_only")),
        }
        evidence = {
            "verdict": verdict.verdict,
            "by": verdict.by,
            "at": at.isoformat(),
            "note": verdict.note,
            "suspended_at": iso(entry["first_s"]),
            "suspension_reason": entry["reason"],
            "suspension_evidence": entry["evidence"],
        }
        if verdict.verdict == "cleared":
            del state.open[key]
            for other in [k for k, o in state.open.items() if o["detector"] == det.name
                          and o["scope_kind"] == entry["scope_kind"] and o["scope_value"] == entry["scope_value"]]:
                del state.open[other]
            if entry["scope_kind"] == ScopeKind.ACCOUNT:
                for other in [k for k, o in state.open.items() if o["type"] == EventType.SUSPENSION]:
                    del state.open[other]
            for each in self.detectors:
                each.reset(state.detectors[each.name], ScopeKind(entry["scope_kind"]), entry["scope_value"])
            return [
                Event(
                    event_id=event_id_for("reactivation", sid),
                    type=EventType.REACTIVATION,
                    clause="8.6",
                    cos=self.rules.cos.reactivation,
                    reason=(
                        f"Verification by {verdict.by} did not confirm the suspicion behind suspension {sid} "
                        f"({scope.kind}:{scope.value}); reactivate it (clause 8.6)."
                    ),
                    evidence=evidence,
                    **common,
                )
            ]
        entry["status"] = "confirmed"
        return [
            Event(
                event_id=event_id_for("termination", sid),
                type=EventType.SUSPENSION,
                clause="13.1",
                cos=CoS.CRITICAL,
                reason=(
                    f"Verification by {verdict.by} confirmed fraud behind suspension {sid} "
                    f"({scope.kind}:{scope.value}); termination of the contract is recommended (clause 13.1)."
                ),
                evidence=evidence,
                termination_recommended=True,
                **common,
            )
        ]

    def holds_suspension(self, state: CustomerState, suspension_event_id: str) -> bool:
        """Whether ``suspension_event_id`` is one of this customer's suspensions (open or closed)."""
        return suspension_event_id in state.closed or any(
            o["event_id"] == suspension_event_id and o["type"] == EventType.SUSPENSION for o in state.open.values()
        )

    def report(self, state: CustomerState, detector: str) -> list[dict[str, Any]]:
        """What one detector shows of this customer's state (its :meth:`Detector.report` rows)."""
        ctx = self.context(state.customer_id)
        for det in self.detectors:
            if det.name == detector:
                return det.report(state.detectors.setdefault(det.name, det.initial_state()), ctx)
        return []

    def active_suspensions(self, state: CustomerState) -> list[dict[str, Any]]:
        """The customer's suspensions in force, with their latest evidence.

        ``status`` is ``active`` (awaiting a verdict) or ``confirmed`` (fraud confirmed,
        termination recommended: the service stays suspended). The would-be suspensions of
        report-only mode (emitted as alerts) are not in force and not listed.
        """
        return [dict(o, customer_id=state.customer_id) for o in state.open.values()
                if o["type"] == EventType.SUSPENSION and not o.get("report_only")]

    def _event(self, det: Detector, dec: Decision, ctx: CustomerContext, trial: bool = False) -> Event:
        """The event of one decision; in report-only mode (``trial``) a suspension becomes a marked alert.

        A report-only event's id differs from the enforced one's (``report_only`` is one of its
        parts), so the real suspension of the same episode, once the mode is ``enforce``, is new.
        """
        cos_rules = self.rules.cos
        etype = EventType.ALERT if trial and dec.type is EventType.SUSPENSION else dec.type
        cos = CoS.CRITICAL if det.name in cos_rules.critical_detectors else getattr(cos_rules, str(etype))
        parts = (str(dec.type), det.name, ctx.customer_id, str(dec.scope_kind), dec.scope_value, dec.episode)
        return Event(
            event_id=event_id_for(*parts, "report_only") if trial else event_id_for(*parts),
            type=etype,
            report_only=trial,
            detector=det.name,
            customer_id=ctx.customer_id,
            scope=Scope(kind=dec.scope_kind, value=dec.scope_value),
            clause=dec.clause or det.clause,
            cos=cos,
            occurred_at=from_epoch(dec.occurred_at_s),
            emitted_at=self.clock(),
            reason=dec.reason,
            evidence=dec.evidence,
            rules_version=self.rules.version,
            **dec.extra,
        )


def report_only(ctx: CustomerContext, detector: str) -> bool:
    """Whether ``detector`` runs in report-only mode for ``ctx``'s customer (rules ``mode: report_only``)."""
    params = ctx.params.get(detector)
    return getattr(params, "mode", "enforce") == REPORT_ONLY


def _same_mode(entry: dict[str, Any] | None, trial: bool) -> dict[str, Any] | None:
    """``entry`` when it was opened in the same mode (report-only or not), else None.

    After a switch from report-only to enforce, the trial's episodes do not swallow the real ones.
    """
    if entry is None or entry.get("report_only", False) != trial:
        return None
    return entry


def _covering_suspension(state: CustomerState, dec: Decision, trial: bool = False) -> dict[str, Any] | None:
    """A suspension in force (any detector) whose scope covers ``dec``'s: the account, or the same scope.

    A report-only would-be suspension covers only report-only decisions (``trial``).
    """
    for entry in state.open.values():
        if entry["type"] == EventType.SUSPENSION and (trial or not entry.get("report_only")) and (
            entry["scope_kind"] == ScopeKind.ACCOUNT
            or (entry["scope_kind"] == dec.scope_kind and entry["scope_value"] == dec.scope_value)
        ):
            return entry
    return None
