"""Output events (DESIGN §4): one JSON object per decision, the same on Kafka and in replay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

#: Namespace of the deterministic UUIDv5 event ids. Never change it: consumers de-duplicate on event_id.
EVENT_NAMESPACE = uuid.UUID("6f1c2a4e-7d3b-5c8e-9a10-2b4c6d8e0f12")


class EventType(StrEnum):
    """What a consumer is asked to do (DESIGN §4)."""

    SUSPENSION = "suspension"
    REACTIVATION = "reactivation"
    CAPACITY_INCREASE = "capacity_increase"
    COMPLIANCE_NOTICE = "compliance_notice"
    ALERT = "alert"


class ScopeKind(StrEnum):
    """What an event applies to; suspensions use the narrowest scope the evidence supports."""

    ACCOUNT = "account"
    DID = "did"
    CLI = "cli"
    OUTBOUND_INTERNATIONAL = "outbound_international"
    DESTINATION_PREFIX = "destination_prefix"


class Scope(BaseModel):
    """``{"kind": ..., "value": ...}``: e.g. ``{"kind": "cli", "value": "+390212345678"}``."""

    model_config = ConfigDict(frozen=True)

    kind: ScopeKind
    value: str


class CoS(StrEnum):
    """Class of service of the ticket an event opens (contract clause 16.3)."""

    CRITICAL = "critical"
    NORMAL = "normal"


#: Kafka topic (without prefix) for each event type (DESIGN §4).
TOPIC_OF_TYPE: dict[EventType, str] = {
    EventType.SUSPENSION: "suspensions",
    EventType.REACTIVATION: "reactivations",
    EventType.CAPACITY_INCREASE: "capacity-increases",
    EventType.COMPLIANCE_NOTICE: "compliance-notices",
    EventType.ALERT: "alerts",
}


class Event(BaseModel):
    """One decision for the NOC, billing or fraud analysts (DESIGN §4).

    ``occurred_at`` is event time (the latest CDR end the detector had seen when it
    fired, UTC); ``emitted_at`` is wall-clock. ``report_only`` marks an event of a detector or
    customer in report-only mode (a would-be suspension is then an ``alert``). Capacity events also fill ``did``,
    ``observed_peak``, ``current_capacity``, ``proposed_capacity``,
    ``first_exceeded_at`` and ``due_by``; reactivations fill ``suspension_event_id``.
    """

    model_config = ConfigDict(extra="forbid")

    event_id: str
    type: EventType
    detector: str
    customer_id: str
    scope: Scope
    clause: str
    cos: CoS
    occurred_at: datetime
    emitted_at: datetime
    reason: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    rules_version: str
    # capacity_increase
    did: str | None = None
    observed_peak: int | None = None
    current_capacity: int | None = None
    proposed_capacity: int | None = None
    first_exceeded_at: datetime | None = None
    due_by: datetime | None = None
    # reactivation / verdict follow-ups
    suspension_event_id: str | None = None
    termination_recommended: bool | None = None
    #: Decided in report-only mode (rules ``mode: report_only``): nothing is suspended because of it.
    report_only: bool = False

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready dict without the fields that do not apply to this type.

        ``report_only`` appears only when true (an absent field means false).
        """
        data = self.model_dump(mode="json", exclude_none=True)
        if not self.report_only:
            del data["report_only"]
        return data


class Verdict(BaseModel):
    """A verification verdict on a suspension (``verifications`` topic, replay verdicts file).

    ``{"suspension_event_id": …, "verdict": "cleared" | "confirmed", "by": …, "at": ISO 8601, "note": optional}``
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    suspension_event_id: str = Field(min_length=1)
    verdict: Literal["cleared", "confirmed"]
    by: str = Field(min_length=1)
    at: AwareDatetime
    note: str | None = None

    @field_validator("at")
    @classmethod
    def _not_future(cls, at: datetime) -> datetime:
        if at > datetime.now(UTC) + timedelta(days=1):
            raise ValueError(f"verdict time {at.isoformat()} is in the future")
        return at


def event_id_for(*parts: str) -> str:
    """Deterministic UUIDv5 of the parts (detector, customer, scope, episode…).

    Replaying the same input yields the same ids, so consumers can de-duplicate.

    >>> event_id_for("a", "b") == event_id_for("a", "b")
    True
    """
    return str(uuid.uuid5(EVENT_NAMESPACE, "|".join(parts)))
