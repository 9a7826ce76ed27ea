"""``traffic``: a customer's traffic per minute of event time and its latest calls, for the NOC page.

A monitor, not a check: it never decides (:attr:`TrafficDetector.decides` is False). It keeps,
in the customer's state like any detector, two bounded things the page's customer view reads
through :meth:`TrafficDetector.report`:

* a **per-minute series** over the last ``series_s`` seconds of event time (measured back from
  the newest CDR end it saw): per UTC minute, the call *attempts* that started in it (every
  direction, answered or not) and the *answered seconds* carried in it (the talk time, answer
  to end, of every answered call, spread over the minutes it spans: 60 s in a minute is one
  call in progress all minute long). Only minutes with traffic are stored;
* the **latest calls**: the newest ``recent_calls`` CDRs it saw (end order), in a compact form,
  so that the call ids an event's evidence names can be looked up while they are still held.

The engine gives CDRs in end order once the watermark passes them; a long call thus adds
its attempt to a minute already shown (its start) when it ends. Expiry follows the newest
end seen, never the watermark, so the end of input (``advance(inf)``) keeps the series.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from detectors.base import CustomerContext, Decision, Detector, DetectorParams
from tollguard.cdr import CallDetailRecord
from tollguard.events import ScopeKind

#: Seconds in one point of the series.
MINUTE_S = 60

# stored minute: [attempts, answered seconds]
_ATTEMPTS, _ANSWERED_S = range(2)


class TrafficParams(DetectorParams):
    """How much of a customer's traffic the NOC view keeps (event time, UTC)."""

    series_s: int = Field(
        86_400, ge=3600, le=86_400,
        description="seconds of event time kept in the per-minute traffic series of the NOC's customer view "
                    "(at most 1440 minutes, about 35 kB of state per customer)",
    )
    recent_calls: int = Field(
        200, ge=0, le=2000,
        description="newest CDRs kept per customer, so the NOC can open the calls behind an event's evidence",
    )


class TrafficDetector(Detector[TrafficParams]):
    """Per-minute attempts and answered minutes, and the latest calls, of one customer (never decides).

    State: ``{"newest_s": float or None, "floor": int or None, "minutes": {"<minute index>":
    [attempts, answered_s]}, "calls": [compact CDR rows, oldest first]}``; a minute index is
    UTC epoch seconds // 60, ``floor`` the oldest index that may still be stored.

    Examples
    --------
    A call from 09:00:00 answered at 09:00:30 and ended at 09:02:00 (90 s of talk), and an
    unanswered attempt at 09:01:10 (2026-01-05, UTC):

    >>> from tollguard.testing import make_cdr
    >>> from tollguard.rules import rules_schema
    >>> from detectors.base import iso
    >>> ctx = rules_schema([TrafficDetector])().context("c1")
    >>> det = TrafficDetector()
    >>> state = det.initial_state()
    >>> det.update(state, make_cdr(call_id="a", start_s=0, answer_s=30, end_s=120), ctx)
    []
    >>> _ = det.update(state, make_cdr(call_id="b", start_s=70, end_s=80, disposition="NO ANSWER"), ctx)
    >>> [(iso(r["minute_s"])[11:16], r["attempts"], r["answered_min"]) for r in det.report(state, ctx)
    ...  if r["kind"] == "minute"]
    [('09:00', 1, 0.5), ('09:01', 1, 1.0)]
    >>> [r["call_id"] for r in det.report(state, ctx) if r["kind"] == "call"]
    ['b', 'a']
    """

    name = "traffic"
    clause = "8.6"
    params_model = TrafficParams
    decides: ClassVar[bool] = False

    def initial_state(self) -> dict[str, Any]:
        return {"newest_s": None, "floor": None, "minutes": {}, "calls": []}

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        p = self.params(ctx)
        end_s = cdr.end.timestamp()
        if state["newest_s"] is None or end_s > state["newest_s"]:
            state["newest_s"] = end_s
        cutoff = int((state["newest_s"] - p.series_s) // MINUTE_S) + 1  # oldest minute kept
        minutes: dict[str, list[float]] = state["minutes"]
        start_m = int(cdr.start.timestamp() // MINUTE_S)
        if start_m >= cutoff:
            minutes.setdefault(str(start_m), [0, 0.0])[_ATTEMPTS] += 1
        if cdr.answered:
            talk_from = end_s - cdr.billsec_s if cdr.answer is None else cdr.answer.timestamp()
            for m in range(max(int(talk_from // MINUTE_S), cutoff), int(end_s // MINUTE_S) + 1):
                carried = min(end_s, (m + 1) * MINUTE_S) - max(talk_from, m * MINUTE_S)
                if carried > 0:
                    slot = minutes.setdefault(str(m), [0, 0.0])
                    slot[_ANSWERED_S] = round(slot[_ANSWERED_S] + carried, 3)
        self._expire(state, cutoff)
        if p.recent_calls:
            calls = state["calls"]
            calls.append(call_row(cdr))
            del calls[: max(0, len(calls) - p.recent_calls)]
        return []

    @staticmethod
    def _expire(state: dict[str, Any], cutoff: int) -> None:
        """Drop the minutes before ``cutoff`` (a minute index): the steps since the last expiry, or one scan."""
        minutes, floor = state["minutes"], state["floor"]
        if floor is not None and cutoff <= floor:
            return
        if floor is None or cutoff - floor > len(minutes):
            for key in [k for k in minutes if int(k) < cutoff]:
                del minutes[key]
        else:
            for m in range(floor, cutoff):
                minutes.pop(str(m), None)
        state["floor"] = cutoff

    def reset(self, state: dict[str, Any], scope_kind: ScopeKind, scope_value: str) -> None:
        """Nothing to forget: the series is what happened, not evidence (a cleared verdict keeps it)."""

    def report(self, state: dict[str, Any], ctx: CustomerContext) -> list[dict[str, Any]]:
        """Rows for the NOC's customer view: the stored minutes, oldest first, then the held calls, newest first.

        ``{"kind": "minute", "minute_s": UTC epoch s of its start, "attempts": int,
        "answered_min": answered minutes carried in it (float, 2 decimals)}`` (only minutes with
        traffic: the page draws the others as zero), and ``{"kind": "call", "call_id", "direction",
        "caller", "callee", "did", "start", "answer", "end" (ISO or None), "billsec_s",
        "disposition"}``.
        """
        rows: list[dict[str, Any]] = []
        for m in sorted(int(k) for k in state["minutes"]):
            attempts, answered_s = state["minutes"][str(m)]
            rows.append({"kind": "minute", "minute_s": m * MINUTE_S, "attempts": int(attempts),
                         "answered_min": round(answered_s / MINUTE_S, 2)})
        rows += [dict(call, kind="call") for call in reversed(state["calls"])]
        return rows


#: The fields of a CDR the page shows (:func:`call_row`).
CALL_FIELDS = ("call_id", "direction", "caller", "callee", "did", "start", "answer", "end", "billsec_s", "disposition")


def call_row(cdr: CallDetailRecord) -> dict[str, Any]:
    """What the page shows of one CDR: :data:`CALL_FIELDS` as in the canonical JSON line (times ISO 8601 UTC).

    >>> from tollguard.testing import make_cdr
    >>> call_row(make_cdr(start_s=0, end_s=9.5, disposition="BUSY"))["end"], call_row(make_cdr())["answer"]
    ('2026-01-05T09:00:09.500000Z', '2026-01-05T09:00:00Z')
    """
    return {
        "call_id": cdr.call_id,
        "direction": cdr.direction.value,
        "caller": cdr.caller,
        "callee": cdr.callee,
        "did": cdr.did,
        "start": _iso(cdr.start),
        "answer": _iso(cdr.answer) if cdr.answer is not None else None,
        "end": _iso(cdr.end),
        "billsec_s": cdr.billsec_s,
        "disposition": cdr.disposition.value,
    }


def _iso(at: datetime) -> str:
    """ISO 8601 as the canonical JSON line writes it (pydantic's form: ``Z``, microseconds when not 0).

    A CDR's times are UTC already (:class:`tollguard.cdr.CallDetailRecord` converts them).
    """
    return at.isoformat().replace("+00:00", "Z")
