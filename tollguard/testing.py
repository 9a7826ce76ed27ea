"""Factories for tests, doctests and benchmarks: build CDRs with a line of code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tollguard.cdr import CallDetailRecord, Direction, Disposition

#: Epoch of the ``start_s`` / ``end_s`` shortcuts: 2026-01-05 09:00:00 UTC (a Monday).
BASE_TIME = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)


def make_cdr(**overrides: Any) -> CallDetailRecord:
    """A valid answered inbound call, with any field overridden.

    ``start_s`` / ``end_s`` / ``answer_s`` (seconds after :data:`BASE_TIME`) are
    shortcuts for the datetimes; durations follow from them unless given.

    >>> make_cdr(start_s=0, end_s=60).billsec_s
    60.0
    """
    start = BASE_TIME + timedelta(seconds=overrides.pop("start_s", 0))
    end = BASE_TIME + timedelta(seconds=overrides.pop("end_s", 60))
    answered = overrides.get("disposition", Disposition.ANSWERED) == Disposition.ANSWERED
    answer_s = overrides.pop("answer_s", None)
    answer = BASE_TIME + timedelta(seconds=answer_s) if answer_s is not None else (start if answered else None)
    fields: dict[str, Any] = {
        "call_id": "call-1",
        "customer_id": "c1",
        "direction": Direction.INBOUND,
        "caller": "+390612345678",
        "callee": "+390298765432",
        "did": "+390298765432",
        "start": start,
        "answer": answer,
        "end": end,
        "duration_s": (end - start).total_seconds(),
        "billsec_s": (end - answer).total_seconds() if answer else 0.0,
        "disposition": Disposition.ANSWERED if answered else overrides["disposition"],
        "hangup_cause": 16,
    }
    fields.update(overrides)
    return CallDetailRecord(**fields)
