"""Calls in progress: what one customer's call events say about its calls (DESIGN §3b).

A call is known from its first event (start, answer or end, whichever comes first) and kept
in :attr:`engine.core.CustomerState.calls` until its CDR completes it; if no CDR comes, the
record its events make (:func:`record_of`) is given to the detectors instead, once, when the
CDR is no longer awaited (``engine.cdr_wait_s`` after its end) or when the call is closed
because its end never arrived (``engine.max_call_open_s`` after its start). An entry is a
JSON-ready dict (it is part of the customer's stored state)::

    {"start": s, "answer": s | None, "end": s | None, "direction": str, "caller": str,
     "callee": str, "did": str | None, "cause": int | None, "source_ip": str | None,
     "user_agent": str | None}

Times are UTC epoch seconds of the switch's own event times.
"""

from __future__ import annotations

from typing import Any

from tollguard.calls import CallEvent, CallEventKind
from tollguard.cdr import CallDetailRecord, Direction, Disposition
from tollguard.context import from_epoch

#: Q.850 causes of an unanswered call's end, by disposition (16 normal clearing, 17 user busy, 34 congestion).
_BUSY, _CONGESTION = 17, 34


def new_call(event: CallEvent) -> dict[str, Any]:
    """The entry of a call first seen through ``event`` (its start is the event's time)."""
    return {
        "start": event.at.timestamp(),
        "answer": None,
        "end": None,
        "direction": str(event.direction),
        "caller": event.caller,
        "callee": event.callee,
        "did": event.did,
        "cause": None,
        "source_ip": event.source_ip,
        "user_agent": event.user_agent,
    }


def apply_event(call: dict[str, Any], event: CallEvent) -> bool:
    """Fold one event into its call's entry; True when it changed anything.

    A start earlier than the known start moves it; an answer sets the answer time (and the
    start if it came first); an end sets the end (the first end reported wins, a repeated
    end of another channel of the same call changes nothing). Missing parties (an end
    record without callee) are filled from later events.
    """
    at = event.at.timestamp()
    changed = False
    if at < call["start"]:
        call["start"], changed = at, True
    if event.event is CallEventKind.ANSWER and call["answer"] is None and call["end"] is None:
        call["answer"], changed = at, True
    elif event.event is CallEventKind.END and call["end"] is None:
        call["end"], changed = max(at, call["start"]), True
        if event.hangup_cause is not None:
            call["cause"] = event.hangup_cause
    for key in ("callee", "caller", "did", "source_ip", "user_agent"):
        value = getattr(event, key)
        if value and not call.get(key):
            call[key], changed = value, True
    return changed


def record_of(call_id: str, customer_id: str, call: dict[str, Any], end_s: float | None = None) -> CallDetailRecord:
    """The CDR a call's events make: ended at its end event, else at ``end_s`` (still up, or closed).

    ``billsec_s`` is the talk time from the answer to the end; a call never answered is
    ``NO ANSWER`` (``BUSY`` / ``CONGESTION`` by its Q.850 cause). Built without re-validation
    (every value comes from validated events): this is called on every evaluation of the
    calls in progress.
    """
    start = call["start"]
    end = call["end"] if end_s is None else end_s
    end = max(end, start)
    answer = call["answer"]
    if answer is not None and answer > end:
        answer = None
    cause = call["cause"]
    if answer is not None:
        disposition = Disposition.ANSWERED
    elif cause == _BUSY:
        disposition = Disposition.BUSY
    elif cause == _CONGESTION:
        disposition = Disposition.CONGESTION
    else:
        disposition = Disposition.NO_ANSWER
    return CallDetailRecord.model_construct(
        call_id=call_id,
        customer_id=customer_id,
        direction=Direction(call["direction"]),
        caller=call["caller"],
        callee=call["callee"],
        caller_raw=None,
        callee_raw=None,
        did=call["did"],
        start=from_epoch(start),
        answer=None if answer is None else from_epoch(answer),
        end=from_epoch(end),
        duration_s=end - start,
        billsec_s=0.0 if answer is None else end - answer,
        disposition=disposition,
        hangup_cause=cause,
        source_ip=call["source_ip"],
        user_agent=call["user_agent"],
        codec=None,
        rtp_in_bytes=None,
        rtp_out_bytes=None,
        rtp_in_packets=None,
        rtp_out_packets=None,
        rtp_lost_packets=None,
        media_start=None,
        mos=None,
        leg_id=None,
        legs=1,
    )


def in_progress_rows(calls: dict[str, dict[str, Any]], customer_id: str) -> list[dict[str, Any]]:
    """The calls still up (no end event), for ``GET /v1/calls``, oldest first.

    Each row: ``{"call_id", "customer_id", "direction", "caller", "callee", "did", "start",
    "answer", "state"}`` with ISO 8601 UTC times and ``state`` ``ringing`` or ``answered``.
    """
    rows = []
    for call_id, call in sorted(calls.items(), key=lambda item: (item[1]["start"], item[0])):
        if call["end"] is not None:
            continue
        rows.append({
            "call_id": call_id,
            "customer_id": customer_id,
            "direction": call["direction"],
            "caller": call["caller"],
            "callee": call["callee"],
            "did": call["did"],
            "start": from_epoch(call["start"]).isoformat().replace("+00:00", "Z"),
            "answer": None if call["answer"] is None else from_epoch(call["answer"]).isoformat().replace("+00:00", "Z"),
            "state": "ringing" if call["answer"] is None else "answered",
        })
    return rows
