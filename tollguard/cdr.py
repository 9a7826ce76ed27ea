"""The canonical call-detail record (CDR) of tollguard (DESIGN §3).

Every adapter (Asterisk, FreeSWITCH, canonical JSON lines) produces one
:class:`CallDetailRecord` per *call*; the detectors only ever see this model.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: No CDR starts before this (a 1970 / 0001 timestamp is a broken clock or a parse error).
EARLIEST_CDR = datetime(2000, 1, 1, tzinfo=UTC)
#: How far in the future (wall clock) a CDR's end may be: switch clocks drift, a year-9999 does not.
MAX_CLOCK_SKEW_S = 86_400
#: Longest call accepted, start to end: 7 days (switches cap calls far below; longer is corrupt).
MAX_CALL_S = 7 * 86_400
#: Slack between duration / billsec and end - start: exports with minute-resolution times round.
DURATION_TOLERANCE_S = 60
_MAX_CLOCK_SKEW = timedelta(seconds=MAX_CLOCK_SKEW_S)


class Direction(StrEnum):
    """Direction of a call as seen from the customer (tenant / PBX)."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class Disposition(StrEnum):
    """Asterisk-style call disposition; other switches are mapped onto it."""

    ANSWERED = "ANSWERED"
    NO_ANSWER = "NO ANSWER"
    BUSY = "BUSY"
    FAILED = "FAILED"
    CONGESTION = "CONGESTION"


class CallDetailRecord(BaseModel):
    """One call, normalised from any supported switch format.

    Times are timezone-aware UTC datetimes; durations are seconds. ``caller`` and
    ``callee`` are E.164 (``+39…``) where the number could be normalised, else the
    raw digits; ``caller_raw`` / ``callee_raw`` keep what the switch wrote.

    Raises
    ------
    pydantic.ValidationError
        On a naive or unparsable timestamp, ``end`` before ``start``, ``answer``
        outside ``[start, end]``, a negative, NaN or infinite number, a time before
        :data:`EARLIEST_CDR` or more than :data:`MAX_CLOCK_SKEW_S` in the future, a
        call longer than :data:`MAX_CALL_S`, or ``duration_s`` / ``billsec_s`` longer
        than the call's own span (plus :data:`DURATION_TOLERANCE_S`). One absurd CDR
        must not move a customer's event-time clock or fake minutes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False, allow_inf_nan=False)

    call_id: str = Field(min_length=1, description="unique per call (Asterisk linkedid/uniqueid, FreeSWITCH uuid)")
    customer_id: str = Field(min_length=1, description="tenant / PBX / account (Asterisk accountcode)")
    direction: Direction
    caller: str = Field(description="calling number, E.164 where normalisable")
    callee: str = Field(description="called number, E.164 where normalisable")
    caller_raw: str | None = None
    callee_raw: str | None = None
    did: str | None = Field(default=None, description="the customer's number in the call")
    start: datetime
    answer: datetime | None = None
    end: datetime
    duration_s: float = Field(ge=0)
    billsec_s: float = Field(ge=0)
    disposition: Disposition
    hangup_cause: int | None = Field(default=None, ge=0, le=127, description="Q.850 cause value")
    source_ip: str | None = None
    user_agent: str | None = None
    codec: str | None = None
    rtp_in_bytes: float | None = Field(default=None, ge=0)
    rtp_out_bytes: float | None = Field(default=None, ge=0)
    rtp_in_packets: float | None = Field(default=None, ge=0)
    rtp_out_packets: float | None = Field(default=None, ge=0)
    rtp_lost_packets: float | None = Field(default=None, ge=0)
    media_start: datetime | None = Field(default=None, description="first media (early media included), UTC")
    mos: float | None = Field(default=None, ge=1, le=5)
    leg_id: str | None = Field(default=None, description="the switch row's own id (Asterisk uniqueid); None = call_id")
    legs: int = Field(default=1, ge=1, description="switch rows merged into this call")

    @field_validator("start", "answer", "end", "media_start", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is UTC:  # what the adapters build: astimezone(UTC) would return it as it is
            return value
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamp has no time zone; CDR times must be tz-aware (UTC)")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _consistent(self) -> CallDetailRecord:
        if self.end < self.start:
            raise ValueError(f"end {self.end.isoformat()} is before start {self.start.isoformat()}")
        if self.answer is not None and not (self.start <= self.answer <= self.end):
            raise ValueError(f"answer {self.answer.isoformat()} is outside [start, end]")
        if self.start < EARLIEST_CDR:
            raise ValueError(f"start {self.start.isoformat()} is before {EARLIEST_CDR.year}: not a real call time")
        if self.end > datetime.now(UTC) + _MAX_CLOCK_SKEW:
            raise ValueError(f"end {self.end.isoformat()} is in the future (more than a day after now)")
        span_s = (self.end - self.start).total_seconds()
        if span_s > MAX_CALL_S:
            raise ValueError(f"call lasts {span_s:.0f} s from start to end, more than {MAX_CALL_S} s")
        if self.duration_s > span_s + DURATION_TOLERANCE_S or self.billsec_s > span_s + DURATION_TOLERANCE_S:
            for name in ("duration_s", "billsec_s"):
                value = getattr(self, name)
                if value > span_s + DURATION_TOLERANCE_S:
                    raise ValueError(
                        f"{name} {value:g} s is longer than the call's start-to-end span of {span_s:.0f} s"
                    )
        return self

    @property
    def answered(self) -> bool:
        """True when the call was answered (disposition ANSWERED with talk time or an answer time)."""
        return self.disposition is Disposition.ANSWERED and (self.answer is not None or self.billsec_s > 0)

    def to_json_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (ISO 8601 times), the ``jsonl`` format's line."""
        return self.model_dump(mode="json", exclude_none=True)


def merge_legs(first: CallDetailRecord, other: CallDetailRecord) -> CallDetailRecord:
    """Merge two rows of one call (same ``call_id``) into one record.

    Legs of one Asterisk call (tied by linkedid) and a second delivery of the same
    call both come here. A row identical to the kept one returns it unchanged, so a
    duplicate delivery counts once. Otherwise the call spans the earliest start to
    the latest end, is answered if any leg was, and keeps the first leg's parties
    (the leg whose row opened the call).
    """
    if first == other:
        return first
    answers = [t for t in (first.answer, other.answer) if t is not None]
    answered = first.disposition is Disposition.ANSWERED or other.disposition is Disposition.ANSWERED
    start = min(first.start, other.start)
    end = max(first.end, other.end)
    answer = min(answers) if answers else None
    update: dict[str, Any] = {
        "start": start,
        "end": end,
        "answer": answer,
        "duration_s": (end - start).total_seconds(),
        "billsec_s": max(first.billsec_s, other.billsec_s),
        "disposition": Disposition.ANSWERED if answered else first.disposition,
        "legs": first.legs + other.legs,
    }
    for name in ("hangup_cause", "source_ip", "user_agent", "codec", "did"):
        if getattr(first, name) is None and getattr(other, name) is not None:
            update[name] = getattr(other, name)
    return first.model_copy(update=update)
