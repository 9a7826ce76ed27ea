"""Call events of simulated calls (DESIGN §3b): what a switch reports while the calls run.

Each simulated call gives a ``start`` event at its start, an ``answer`` event at its answer
(answered calls) and an ``end`` event at its end (Q.850 cause of its CDR), with the CDR's
parties, DID and call id, so the engine completes the call with its CDR. A call delivered
in several CDR rows (legs, a second delivery) gives its events once, from its first row.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson

from tollguard.calls import CallEvent, CallEventKind
from tollguard.cdr import CallDetailRecord


def call_events_of(records: Iterable[CallDetailRecord]) -> list[CallEvent]:
    """The start / answer / end events of ``records``' calls, in arrival order (by time, then call id).

    >>> from tollguard.testing import make_cdr
    >>> [(e.event.value, e.at.second) for e in call_events_of([make_cdr(start_s=0, answer_s=5, end_s=30)])]
    [('start', 0), ('answer', 5), ('end', 30)]
    """
    seen: set[str] = set()
    events: list[CallEvent] = []
    for cdr in records:
        if cdr.call_id in seen:
            continue
        seen.add(cdr.call_id)
        common = {"call_id": cdr.call_id, "customer_id": cdr.customer_id, "direction": cdr.direction,
                  "caller": cdr.caller, "callee": cdr.callee, "caller_raw": cdr.caller_raw,
                  "callee_raw": cdr.callee_raw, "did": cdr.did, "source_ip": cdr.source_ip,
                  "user_agent": cdr.user_agent}
        events.append(CallEvent(**common, event=CallEventKind.START, at=cdr.start))
        if cdr.answer is not None and cdr.answered:
            events.append(CallEvent(**common, event=CallEventKind.ANSWER, at=cdr.answer))
        events.append(CallEvent(**common, event=CallEventKind.END, at=cdr.end, hangup_cause=cdr.hangup_cause))
    order = {CallEventKind.START: 0, CallEventKind.ANSWER: 1, CallEventKind.END: 2}
    events.sort(key=lambda e: (e.at, e.call_id, order[e.event]))
    return events


def write_call_events(events: Iterable[CallEvent], path: str | Path) -> int:
    """Write events as ``call-events-jsonl`` (one JSON object a line); returns how many."""
    n = 0
    with open(path, "wb") as handle:
        for event in events:
            handle.write(orjson.dumps(event.to_json_dict()) + b"\n")
            n += 1
    return n
