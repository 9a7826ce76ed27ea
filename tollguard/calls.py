"""The canonical call event: one moment of a call in progress (DESIGN §3b).

A CDR exists only once a call has ended; switches also report calls as they happen
(FreeSWITCH event socket, Asterisk AMI, Kamailio ``acc`` transaction records). Every
call-event adapter (:mod:`tollguard.call_adapters`) produces one :class:`CallEvent` per
reported moment; the engine keeps the calls in progress from them and completes each
call with its CDR (same ``call_id``), so a call is counted once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tollguard.cdr import EARLIEST_CDR, MAX_CLOCK_SKEW_S, Direction


class CallEventKind(StrEnum):
    """What happened to the call at ``at``.

    ``start``: the call attempt (SIP INVITE, channel created); ``answer``: the 200 OK
    (channel answered); ``end``: the hang-up (BYE, CANCEL, failure; channel hung up).
    """

    START = "start"
    ANSWER = "answer"
    END = "end"


class CallEvent(BaseModel):
    """One moment of one call, normalised from any supported switch event format.

    Attributes
    ----------
    call_id : str
        The id the call's CDR will carry (FreeSWITCH ``Unique-ID`` = the CDR's uuid,
        Asterisk ``Linkedid`` = the CDR's linkedid, Kamailio's SIP ``Call-ID``).
    customer_id, direction, caller, callee, caller_raw, callee_raw, did :
        As in :class:`tollguard.cdr.CallDetailRecord` (E.164 where normalisable).
    event : CallEventKind
        ``start``, ``answer`` or ``end``.
    at : datetime
        When it happened at the switch, tz-aware UTC (event time: the engine never reads
        the wall clock for decisions).
    hangup_cause : int or None
        Q.850 cause of an ``end`` event, where the switch gives it.
    source_ip, user_agent : str or None

    Raises
    ------
    pydantic.ValidationError
        A naive or unparsable ``at``, one before :data:`tollguard.cdr.EARLIEST_CDR` or more
        than :data:`tollguard.cdr.MAX_CLOCK_SKEW_S` after the wall clock (a broken switch
        clock must not move a customer's event time), an empty id, an unknown key.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    call_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    direction: Direction
    caller: str
    callee: str
    caller_raw: str | None = None
    callee_raw: str | None = None
    did: str | None = None
    event: CallEventKind
    at: datetime
    hangup_cause: int | None = Field(default=None, ge=0, le=127, description="Q.850 cause value of an end")
    source_ip: str | None = None
    user_agent: str | None = None

    @field_validator("at", mode="after")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamp has no time zone; call event times must be tz-aware (UTC)")
        value = value.astimezone(UTC)
        if value < EARLIEST_CDR:
            raise ValueError(f"at {value.isoformat()} is before {EARLIEST_CDR.year}: not a real call time")
        if value > datetime.now(UTC) + timedelta(seconds=MAX_CLOCK_SKEW_S):
            raise ValueError(f"at {value.isoformat()} is in the future (more than a day after now)")
        return value

    def to_json_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (ISO 8601 time), the ``call-events-jsonl`` line."""
        return self.model_dump(mode="json", exclude_none=True)
