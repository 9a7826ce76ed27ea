"""``traffic``: a customer's traffic per minute of event time and its latest calls, for the NOC page.

A monitor, not a check: it never decides (:attr:`TrafficDetector.decides` is False). It keeps,
in the customer's state like any detector, two bounded things the page's customer view reads
through :meth:`TrafficDetector.report`:

* a **per-minute series** over the last ``series_s`` seconds of event time (measured back from
  the newest CDR end it saw): per UTC minute, the call *attempts* that started in it (every
  direction, answered or not) and the *answered seconds* carried in it (the talk time, answer
  to end, of every answered call, spread over the minutes it spans: 60 s in a minute is one
  call in progress all minute long), in blocks of an hour;
* the **latest calls**: the newest ``recent_calls`` CDRs it saw (end order), in a compact form,
  so that the call ids an event's evidence names can be looked up while they are still held.

The engine gives CDRs in end order once the watermark passes them; a long call thus adds
its attempt to a minute already shown (its start) when it ends. Expiry follows the newest
end seen, never the watermark, so the end of input (``advance(inf)``) keeps the series.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import Field

from detectors.base import CustomerContext, Decision, Detector, DetectorParams
from tollguard.cdr import CallDetailRecord
from tollguard.events import ScopeKind

#: Seconds in one point of the series.
MINUTE_S = 60

#: Minutes in one stored block of the series (an hour).
BLOCK_MINUTES = 60

#: An hour of zero attempts and of zero answered seconds, to clear the start of a block in one move.
_ZERO_COUNTS: list[float] = [0] * BLOCK_MINUTES
_ZERO_SECONDS: list[float] = [0.0] * BLOCK_MINUTES


class TrafficParams(DetectorParams):
    """How much of a customer's traffic the NOC view keeps (event time, UTC)."""

    series_s: int = Field(
        86_400, ge=3600, le=86_400,
        description="seconds of event time kept in the per-minute traffic series of the NOC's customer view "
                    "(in blocks of an hour: about 10 kB of state per customer)",
    )
    recent_calls: int = Field(
        200, ge=0, le=2000,
        description="newest CDRs kept per customer, so the NOC can open the calls behind an event's evidence "
                    "(about 180 bytes of state each)",
    )


class TrafficDetector(Detector[TrafficParams]):
    """Per-minute attempts and answered minutes, and the latest calls, of one customer (never decides).

    State: ``{"newest_s": float or None, "floor": int or None, "hours": {"<hour index>": [60 attempts,
    then 60 answered seconds, one per minute of the hour]}, "calls": [[the CALL_FIELDS values], ...
    oldest first]}``; a minute index is UTC epoch seconds // 60, an hour index a minute index // 60,
    ``floor`` the oldest minute index kept (older minutes read 0). Per customer at most 25 hours of
    120 numbers and ``recent_calls`` rows: about 10 kB + 180 bytes a call of JSON.

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
    clause = "8.6"  # anomalous traffic is watched (the interface asks for one; no event ever carries it)
    params_model = TrafficParams
    decides: ClassVar[bool] = False

    def initial_state(self) -> dict[str, Any]:
        return {"newest_s": None, "floor": None, "hours": {}, "calls": []}

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        p = self.params(ctx)
        end_s = cdr.end.timestamp()
        start_s = cdr.start.timestamp()
        answer_s = cdr.answer.timestamp() if cdr.answer is not None else None
        newest_s = state["newest_s"]
        if newest_s is None or end_s > newest_s:
            state["newest_s"] = newest_s = end_s
        cutoff = int((newest_s - p.series_s) // MINUTE_S) + 1  # oldest minute kept
        floor = state["floor"]
        if floor is None or cutoff > floor:
            self._expire(state, cutoff)
        hours: dict[str, list[float]] = state["hours"]
        start_m = int(start_s // MINUTE_S)
        if start_m >= cutoff:
            _block(hours, start_m)[start_m % BLOCK_MINUTES] += 1
        if cdr.answered:
            talk_from = end_s - cdr.billsec_s if answer_s is None else answer_s
            block_key, block = None, None
            for m in range(max(int(talk_from // MINUTE_S), cutoff), int(end_s // MINUTE_S) + 1):
                carried = min(end_s, (m + 1) * MINUTE_S) - max(talk_from, m * MINUTE_S)
                if carried > 0:
                    hour = m // BLOCK_MINUTES
                    if hour != block_key or block is None:
                        block_key, block = hour, _block(hours, m)
                    i = BLOCK_MINUTES + m % BLOCK_MINUTES
                    block[i] = round(block[i] + carried, 3)
        keep = p.recent_calls
        if keep:
            calls = state["calls"]
            calls.append([
                cdr.call_id, cdr.direction.value, cdr.caller, cdr.callee, cdr.did, start_s, answer_s, end_s,
                cdr.billsec_s, cdr.disposition.value,
            ])  # the values of CALL_FIELDS (:func:`_call_values`)
            over = len(calls) - keep
            if over > 0:
                del calls[:over]
        return []

    @staticmethod
    def _expire(state: dict[str, Any], cutoff: int) -> None:
        """Forget the minutes before ``cutoff`` (a minute index): older hours dropped, the rest of the oldest zeroed."""
        if state["floor"] is not None and cutoff <= state["floor"]:
            return
        state["floor"] = cutoff
        hours = state["hours"]
        for key in list(hours):
            first = int(key) * BLOCK_MINUTES
            if first + BLOCK_MINUTES <= cutoff:
                del hours[key]
            elif first < cutoff:
                block, n = hours[key], cutoff - first
                block[:n] = _ZERO_COUNTS[:n]
                block[BLOCK_MINUTES : BLOCK_MINUTES + n] = _ZERO_SECONDS[:n]

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
        for hour in sorted(int(k) for k in state["hours"]):
            block = state["hours"][str(hour)]
            for i in range(BLOCK_MINUTES):
                attempts, answered_s = block[i], block[BLOCK_MINUTES + i]
                if attempts or answered_s:
                    rows.append({"kind": "minute", "minute_s": (hour * BLOCK_MINUTES + i) * MINUTE_S,
                                 "attempts": int(attempts), "answered_min": round(answered_s / MINUTE_S, 2)})
        rows += [dict(_row(values), kind="call") for values in reversed(state["calls"])]
        return rows


def _block(hours: dict[str, list[float]], minute: int) -> list[float]:
    """The stored hour of a minute index (created empty)."""
    key = str(minute // BLOCK_MINUTES)
    block = hours.get(key)
    if block is None:
        block = hours[key] = [0] * BLOCK_MINUTES + [0.0] * BLOCK_MINUTES
    return block


#: The fields of a CDR the page shows (:func:`call_row`).
CALL_FIELDS = ("call_id", "direction", "caller", "callee", "did", "start", "answer", "end", "billsec_s", "disposition")


def call_row(cdr: CallDetailRecord) -> dict[str, Any]:
    """What the page shows of one CDR: :data:`CALL_FIELDS` as in the canonical JSON line (times ISO 8601 UTC).

    >>> from tollguard.testing import make_cdr
    >>> call_row(make_cdr(start_s=0, end_s=9.5, disposition="BUSY"))["end"], call_row(make_cdr())["answer"]
    ('2026-01-05T09:00:09.500000Z', '2026-01-05T09:00:00Z')
    """
    return _row(_call_values(cdr))


def _call_values(cdr: CallDetailRecord) -> list[Any]:
    """The values of :data:`CALL_FIELDS`, in order, times as UTC epoch seconds (a stored call: no
    formatting on the per-CDR path; :func:`_row` writes the times when the page asks)."""
    return [
        cdr.call_id, cdr.direction.value, cdr.caller, cdr.callee, cdr.did, cdr.start.timestamp(),
        cdr.answer.timestamp() if cdr.answer is not None else None, cdr.end.timestamp(), cdr.billsec_s,
        cdr.disposition.value,
    ]


_TIME_FIELDS = frozenset({"start", "answer", "end"})


def _row(values: list[Any]) -> dict[str, Any]:
    """A stored call as the page shows it (epoch times as ISO 8601; a state stored with ISO text is kept)."""
    return {k: _iso(v) if k in _TIME_FIELDS and isinstance(v, (int, float)) else v
            for k, v in zip(CALL_FIELDS, values, strict=True)}


def _iso(epoch_s: float) -> str:
    """ISO 8601 as the canonical JSON line writes it (pydantic's form: ``Z``, microseconds when not 0)."""
    return datetime.fromtimestamp(round(epoch_s, 6), UTC).isoformat().replace("+00:00", "Z")
