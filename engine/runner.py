"""The one loop from input records to events, used unchanged by replay and by the Faust worker.

``tollguard replay`` is the :class:`Runner` over files (:mod:`streams.replay`); the Faust
``detect`` agent is the same runner over the state table and the topics
(:mod:`streams.app`). Whatever the mode, an input is one of:

* a parsed CDR (:meth:`Runner.take_record`): per-customer state looked up, the engine
  orders it in event time, the events it completes come out;
* a line that could not be parsed (:meth:`Runner.take_unparsable`): one :class:`Reject`;
* a verdict on a suspension (:meth:`Runner.take_verdict`): applied where it arrives among
  its customer's inputs (a reactivation or a termination recommendation) or refused with
  its reason (a :class:`Reject`). In replay, one whose suspension has not been emitted yet
  is held until it is, and settled (applied, or refused as unknown) at the latest at a
  flush; the stream settles every verdict at once (it is given on a suspension in force),
  so a verdict never holds back a partition's committed offsets.
  The stream receives verdicts in real time, on the partition of their customer's CDRs;
  replay places a verdicts file's lines by time (:mod:`streams.replay`: a verdict arrives
  once replay's event time reaches its ``at``), so both see the same order;
* a flush (:meth:`Runner.flush`, end of input or ``tollguard produce --flush``): every
  waiting CDR released, detectors closed, held verdicts settled.

Each call returns an :class:`Outcome`; the caller writes its events and rejects (files in
replay, topics in the stream) with :func:`event_bytes` / :meth:`Reject.to_json_bytes`, so
both modes write the same bytes for the same input.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson
from pydantic import ValidationError

from engine.core import CustomerState, Engine
from tollguard.adapters import FORMATS
from tollguard.adapters.call_events import CALL_EVENT_FORMATS
from tollguard.calls import CallEvent
from tollguard.cdr import CallDetailRecord
from tollguard.errors import VerdictError
from tollguard.events import Event, EventType, Verdict

RejectKind = Literal["cdr", "verdict", "call_event"]

#: Longest raw text a reject carries (characters): 64 Ki characters are at most 384 KiB of JSON.
MAX_RAW_CHARS = 64 * 1024


@dataclass(frozen=True, slots=True)
class Reject:
    """One input that was not taken, with where it came from and why.

    The same shape in replay's rejects file and on the ``cdrs-dead-letter`` topic.

    Attributes
    ----------
    source : str
        A file path (replay) or ``topic[partition]`` (stream).
    position : int or None
        1-based line number in a file, or the message offset in its partition.
    raw : str
        The input as received (undecodable bytes replaced).
    reason : str
        One sentence: what is wrong with it.
    kind : {"cdr", "verdict", "call_event"}
        What the input was meant to be.
    """

    source: str
    position: int | None
    raw: str
    reason: str
    kind: RejectKind = "cdr"

    def to_json_dict(self) -> dict[str, Any]:
        """``{"kind", "source", "position", "raw", "reason"}``, plus ``raw_bytes`` and ``raw_sha256`` when cut.

        A raw text longer than :data:`MAX_RAW_CHARS` characters is cut to that many (so the
        record stays far below the broker's 1 MB message limit even when every character is
        a 6-byte JSON escape), and the record then gives the original size in UTF-8 bytes
        and its SHA-256, so the input is still accounted for and recognisable.
        """
        data: dict[str, Any] = {"kind": self.kind, "source": self.source, "position": self.position,
                                "raw": self.raw, "reason": self.reason}
        if len(self.raw) > MAX_RAW_CHARS:
            whole = self.raw.encode("utf-8", "surrogateescape")
            data["raw"] = self.raw[:MAX_RAW_CHARS]
            data["raw_bytes"] = len(whole)
            data["raw_sha256"] = hashlib.sha256(whole).hexdigest()
        return data

    def to_json_bytes(self) -> bytes:
        """One JSON object (UTF-8, no newline)."""
        return orjson.dumps(self.to_json_dict())


def event_bytes(event: Event) -> bytes:
    """An event as the one JSON object every output carries (UTF-8, no newline; DESIGN §4)."""
    return orjson.dumps(event.to_json_dict())


@dataclass(slots=True)
class Outcome:
    """What one input produced: events to emit, rejects to write, and verdict tokens now settled.

    ``status`` is the CDR's fate (``accepted``, ``merged``, ``duplicate``, ``late``,
    ``unparsable``), None for other inputs. ``settled`` holds the tokens given to
    :meth:`Runner.take_verdict` for verdicts applied or refused by this call (the stream
    acknowledges their messages then).
    """

    events: list[Event] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    settled: list[Any] = field(default_factory=list)
    status: str | None = None

    def extend(self, other: Outcome) -> None:
        """Append ``other``'s events, rejects and settled tokens to this outcome."""
        self.events.extend(other.events)
        self.rejects.extend(other.rejects)
        self.settled.extend(other.settled)


@dataclass
class RunCounts:
    """Counts of one run, the same in replay and stream.

    ``accepted`` counts CDRs taken in, including ``merged_legs`` (further legs of a call)
    and re-deliveries (``duplicates``, counted once); ``rejected`` counts CDR inputs refused
    (unparsable or ``late``); ``calls`` is the number of distinct calls the detectors saw.
    """

    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    merged_legs: int = 0
    late: int = 0
    verdicts_applied: int = 0
    verdicts_refused: int = 0
    #: call events taken (``call_events``), refused (``call_events_rejected``), of a call already
    #: completed by its CDR (``call_events_completed``, no effect); calls closed without an end event
    call_events: int = 0
    call_events_rejected: int = 0
    call_events_completed: int = 0
    calls_closed: int = 0
    events_by_type: Counter[str] = field(default_factory=Counter)
    events_by_detector: Counter[str] = field(default_factory=Counter)
    rejects_by_reason: Counter[str] = field(default_factory=Counter)

    @property
    def calls(self) -> int:
        """Distinct calls given to the detectors."""
        return self.accepted - self.duplicates - self.merged_legs

    @property
    def events(self) -> int:
        """Number of events emitted."""
        return sum(self.events_by_type.values())


class StateStore(Protocol):
    """Where the runner keeps customers' states: a dict in replay, the Faust table in the stream."""

    def get(self, customer_id: str) -> CustomerState | None:
        """The customer's state, or None when it has none yet."""

    def put(self, state: CustomerState) -> None:
        """Record that ``state`` changed (the stream writes it at its next checkpoint)."""

    def customers(self) -> Iterable[str]:
        """Every customer this store holds, in order of first appearance."""


class MemoryStore:
    """A :class:`StateStore` in a dict (replay)."""

    def __init__(self) -> None:
        self.states: dict[str, CustomerState] = {}

    def get(self, customer_id: str) -> CustomerState | None:
        """The customer's state, or None."""
        return self.states.get(customer_id)

    def put(self, state: CustomerState) -> None:
        """Keep ``state`` (the dict holds the object itself, so nothing else to do)."""
        self.states[state.customer_id] = state

    def customers(self) -> Iterable[str]:
        """Customers in order of first appearance."""
        return list(self.states)


def reason_class(reason: str) -> str:
    """Group reject reasons for summaries: the reason without format name and quoted values.

    >>> reason_class("asterisk-csv: bad timestamp 'xyz' in column end")
    'bad timestamp'
    """
    head, sep, rest = reason.partition(": ")
    text = rest if sep and (head in FORMATS or head in CALL_EVENT_FORMATS) else reason
    for stop in (" '", ": ", ", got", " (", " at byte"):
        cut = text.find(stop)
        if cut > 0:
            text = text[:cut]
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(slots=True)
class _Held:
    verdict: Verdict
    source: str
    position: int | None
    customer_id: str | None
    token: Any


class Runner:
    """Turns input records and verdicts into events and rejects, for replay and stream alike.

    Parameters
    ----------
    engine : Engine
        The detectors and the rules.
    store : StateStore, optional
        Customers' states (default: a :class:`MemoryStore`).
    """

    def __init__(self, engine: Engine, store: StateStore | None = None) -> None:
        self.engine = engine
        self.store: StateStore = store if store is not None else MemoryStore()
        self.counts = RunCounts()
        #: newest CDR end taken (UTC epoch s): replay feeds a verdicts file by it
        self.event_time_s = float("-inf")
        self._held: list[_Held] = []
        self._owner: dict[str, str] = {}  # suspension event id -> customer id (suspensions emitted here)
        self._seen_verdicts: set[tuple[str, str, str, str]] = set()

    # -- inputs -----------------------------------------------------------------------------
    def state(self, customer_id: str) -> CustomerState:
        """The customer's state, created when it has none."""
        state = self.store.get(customer_id)
        if state is None:
            state = self.engine.new_state(customer_id)
            self.store.put(state)
        return state

    def take_record(self, record: CallDetailRecord, source: str, position: int | None, raw: str) -> Outcome:
        """One parsed CDR, in arrival order. ``raw`` is kept for the reject when it is late."""
        state = self.state(record.customer_id)
        result = self.engine.ingest(state, record)
        counts = self.counts
        out = Outcome(status=result.status)
        if result.status == "late":
            counts.late += 1
            out.rejects.append(self._reject(source, position, raw, result.reason or "late CDR"))
        else:
            counts.accepted += 1
            if result.status == "duplicate":
                counts.duplicates += 1
            else:
                if result.status == "merged":
                    counts.merged_legs += 1
                self.store.put(state)
            self._emitted(out, result.events)
        end_s = record.end.timestamp()
        if end_s > self.event_time_s:
            self.event_time_s = end_s
        if self._held and out.events:
            out.extend(self._settle_due(final=False))
        return out

    def take_call_event(self, event: CallEvent, source: str, position: int | None, raw: str | None = None) -> Outcome:
        """One parsed call event (DESIGN §3b), in arrival order, through the customer's engine state.

        A ``late`` one (see :meth:`engine.core.Engine.ingest_call`) is a reject of kind ``call_event``
        with its reason; ``raw`` is its input text (default: the canonical event's JSON).
        """
        state = self.state(event.customer_id)
        result = self.engine.ingest_call(state, event)
        counts = self.counts
        if result.status == "late":
            text = raw if raw is not None else orjson.dumps(event.to_json_dict()).decode()
            return self.bad_call_event(source, position, text, result.reason or "late call event")
        out = Outcome(status=result.status)
        counts.call_events += 1
        if result.status == "completed":
            counts.call_events_completed += 1
        else:
            self.store.put(state)
        counts.calls_closed += len(result.closed)
        self._emitted(out, result.events)
        at_s = event.at.timestamp()
        if at_s > self.event_time_s:
            self.event_time_s = at_s
        if self._held and out.events:
            out.extend(self._settle_due(final=False))
        return out

    def bad_call_event(self, source: str, position: int | None, raw: str, reason: str) -> Outcome:
        """A call-event input that no adapter could read: a reject (kind ``call_event``) with its reason."""
        self.counts.call_events_rejected += 1
        self.counts.rejects_by_reason[reason_class(reason)] += 1
        return Outcome(rejects=[Reject(source, position, raw, reason, "call_event")], status="unparsable")

    def take_unparsable(self, source: str, position: int | None, raw: str, reason: str) -> Outcome:
        """One input line that no adapter could read: a reject with its reason."""
        return Outcome(rejects=[self._reject(source, position, raw, reason)], status="unparsable")

    def take_verdict(
        self,
        verdict: Verdict,
        source: str,
        position: int | None,
        customer_id: str | None = None,
        token: Any = None,
        hold: bool = True,
    ) -> Outcome:
        """A verdict on a suspension (DESIGN §4), applied or refused now, or held.

        With ``hold`` (replay, whose verdicts file is fed by time) it is held while its
        suspension has not been emitted, and a flush settles it (applied, or refused as
        unknown); without (the stream, where a verdict is given on a suspension in force) it
        is settled at once. ``customer_id`` names the
        suspension's customer where the input says it (the stream's message key); else the
        runner finds it among the suspensions it emitted. ``token`` comes back in
        :attr:`Outcome.settled` when the verdict is applied or refused. A copy of a verdict
        already taken (same suspension, verdict, author and time) is settled at once, with
        no effect.
        """
        ident = (verdict.suspension_event_id, verdict.verdict, verdict.by, verdict.at.isoformat())
        if ident in self._seen_verdicts:
            return Outcome(settled=[token])
        self._seen_verdicts.add(ident)
        held = _Held(verdict, source, position, customer_id, token)
        if not hold:
            out = Outcome()
            self._settle(held, out)
            return out
        self._held.append(held)
        self._held.sort(key=lambda h: h.verdict.at)
        return self._settle_due(final=False)

    def flush(self, customers: Iterable[str] | None = None) -> Outcome:
        """End of input: release every waiting CDR of ``customers`` (default: all) and settle verdicts."""
        out = Outcome()
        for customer_id in list(self.store.customers()) if customers is None else customers:
            state = self.store.get(customer_id)
            if state is not None:
                self._emitted(out, self.engine.flush(state))
                self.store.put(state)
        out.extend(self._settle_due(final=True, customers=customers))
        return out

    def settle(self) -> Outcome:
        """Settle every held verdict now: applied where its suspension exists, else refused as unknown."""
        return self._settle_due(final=True)

    def bad_verdict(self, source: str, position: int | None, raw: str, reason: str | ValidationError) -> Outcome:
        """A verdict input that does not validate: refused with its reason (text, or pydantic's error)."""
        if isinstance(reason, ValidationError):
            first = reason.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            reason = f"{where}: {first['msg']}" if where else str(first["msg"])
        self.counts.verdicts_refused += 1
        return Outcome(rejects=[Reject(source, position, raw, f"bad verdict: {reason}", "verdict")])

    # -- internals --------------------------------------------------------------------------
    def _reject(self, source: str, position: int | None, raw: str, reason: str) -> Reject:
        self.counts.rejected += 1
        self.counts.rejects_by_reason[reason_class(reason)] += 1
        return Reject(source, position, raw, reason)

    def _emitted(self, out: Outcome, events: list[Event]) -> None:
        counts = self.counts
        for event in events:
            if event.type == EventType.SUSPENSION and not event.termination_recommended:
                self._owner[event.event_id] = event.customer_id
            counts.events_by_type[str(event.type)] += 1
            counts.events_by_detector[event.detector] += 1
        out.events.extend(events)

    def _due(self, final: bool, customers: Iterable[str] | None) -> Iterator[_Held]:
        among = None if customers is None else set(customers)
        for held in list(self._held):
            owner = held.customer_id or self._owner.get(held.verdict.suspension_event_id)
            if (final and (among is None or owner in among)) or self._known(held):
                self._held.remove(held)
                yield held

    def _known(self, held: _Held) -> bool:
        """Whether the held verdict's suspension has been emitted (so the verdict can be judged)."""
        sid = held.verdict.suspension_event_id
        if sid in self._owner:
            return True
        state = self.store.get(held.customer_id) if held.customer_id is not None else None
        return state is not None and self.engine.holds_suspension(state, sid)

    def _settle_due(self, final: bool, customers: Iterable[str] | None = None) -> Outcome:
        out = Outcome()
        for held in self._due(final, customers):
            self._settle(held, out)
        return out

    def _settle(self, held: _Held, out: Outcome) -> None:
        """Apply or refuse one verdict taken off the held list; its token goes to ``out.settled``."""
        verdict = held.verdict
        customer_id = held.customer_id or self._owner.get(verdict.suspension_event_id)
        state = self.store.get(customer_id) if customer_id is not None else None
        try:
            if state is None or not self.engine.holds_suspension(state, verdict.suspension_event_id):
                raise VerdictError(f"unknown suspension {verdict.suspension_event_id}")
            events = self.engine.apply_verdict(state, verdict)
        except VerdictError as exc:
            self.counts.verdicts_refused += 1
            out.rejects.append(
                Reject(held.source, held.position, verdict.model_dump_json(), f"verdict refused: {exc}", "verdict")
            )
        else:
            self.counts.verdicts_applied += 1
            self.store.put(state)
            self._emitted(out, events)
        out.settled.append(held.token)
