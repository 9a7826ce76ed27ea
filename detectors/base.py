"""The one interface every rule detector implements, and what it returns.

A detector is a small pure unit: it owns no state. The caller (replay's dict or a
Faust table) keeps one JSON-serialisable state per customer and passes it in::

    state = detector.initial_state()
    decisions = detector.update(state, cdr, ctx)      # per CDR, event-time order
    decisions += detector.advance(state, now_s, ctx)  # event time moved on (watermark)

``update`` and ``advance`` mutate ``state`` in place (it is the caller's copy) and
return the decisions; they never mutate the CDR and never read the clock, so the
same CDRs in the same order always give the same decisions, in replay and stream.
Times inside states are UTC epoch seconds (floats).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tollguard.cdr import CallDetailRecord
from tollguard.events import EventType, ScopeKind

Level = Literal["warning", "critical", "notice", "billing"]


class DetectorParams(BaseModel):
    """Base of every detector's thresholds: frozen, unknown keys refused.

    Each field carries its default, its allowed range and, in its description,
    its source (contract clause, standard or measured figure).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: (warning field, critical field) pairs: the warning must not be above the critical level,
    #: so the alert fires before the suspension. Each detector lists its own.
    level_pairs: ClassVar[tuple[tuple[str, str], ...]] = ()

    enabled: bool = Field(True, description="run this detector (a customer allowlist can turn it off)")

    @model_validator(mode="after")
    def _levels_ordered(self) -> DetectorParams:
        for warn, crit in self.level_pairs:
            if getattr(self, warn) > getattr(self, crit):
                raise ValueError(
                    f"{crit} ({getattr(self, crit)}) must be >= {warn} ({getattr(self, warn)}): "
                    "the warning fires before the suspension"
                )
        return self


@dataclass(frozen=True, slots=True)
class CustomerContext:
    """What the rules say about one customer, resolved once and cached.

    Attributes
    ----------
    customer_id : str
    country : str
        ISO 3166 region used to normalise and type numbers ("IT").
    params : Mapping[str, DetectorParams]
        Effective thresholds per detector name, customer overrides applied.
    did_capacity : Mapping[str, int]
        Bought simultaneous-call capacity per E.164 DID; others get ``default_did_capacity``.
    default_did_capacity : int
        Contract clause 6.1: at least 20 simultaneous calls per DID.
    link_kbps : float or None
        Known access-link bandwidth in kbit/s, when the customer declared it.
    allow_destinations : tuple of str
        E.164 numbers or prefixes the customer is authorised to call (never premium evidence).
    home_dids : frozenset of str
        The customer's own DIDs, where the rules list them.
    high_risk_prefixes : tuple of str
        E.164 prefixes of IRSF / revenue-share ranges the operator maintains (rules file).
    """

    customer_id: str
    country: str = "IT"
    params: Mapping[str, DetectorParams] = field(default_factory=dict)
    did_capacity: Mapping[str, int] = field(default_factory=dict)
    default_did_capacity: int = 20
    link_kbps: float | None = None
    allow_destinations: tuple[str, ...] = ()
    home_dids: frozenset[str] = frozenset()
    high_risk_prefixes: tuple[str, ...] = ()

    def capacity_of(self, did: str) -> int:
        """Simultaneous-call capacity of ``did`` (rules override, else the contract's 20)."""
        return self.did_capacity.get(did, self.default_did_capacity)


@dataclass(frozen=True, slots=True)
class Decision:
    """What a detector decided; the engine turns it into an :class:`tollguard.events.Event`.

    Attributes
    ----------
    type : EventType
        suspension, alert, compliance_notice or capacity_increase.
    level : {"warning", "critical", "notice", "billing"}
        Which threshold fired; CoS is derived from type and level by the rules.
    scope_kind, scope_value :
        What is suspended / concerned, narrowest the evidence supports.
    episode : str
        Stable key of the episode (e.g. the ISO time of its first evidence); with
        detector, customer and scope it makes the deterministic event id.
    occurred_at_s : float
        Event time (UTC epoch seconds) at which the evidence was complete.
    reason : str
        One sentence for the on-call engineer.
    evidence : dict
        The numbers behind it (counts, rates, thresholds, sample call_ids).
    clause : str or None
        Contract clause, when it differs from the detector's default.
    extra : dict
        Type-specific event fields (capacity_increase: did, observed_peak, ...).
    """

    type: EventType
    level: Level
    scope_kind: ScopeKind
    scope_value: str
    episode: str
    occurred_at_s: float
    reason: str
    evidence: dict[str, Any]
    clause: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Detector:
    """Base class: name, default clause, thresholds model, and the two pure steps.

    Subclasses set ``name``, ``clause`` and ``params_model`` and implement
    :meth:`update` (and :meth:`advance` when decisions depend on event time
    passing, not only on arriving CDRs).
    """

    name: ClassVar[str]
    clause: ClassVar[str]
    params_model: ClassVar[type[DetectorParams]]

    def initial_state(self) -> dict[str, Any]:
        """A fresh, empty, JSON-serialisable state for one customer."""
        return {}

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        """Fold one CDR (event-time order) into ``state``; return the decisions it triggers."""
        raise NotImplementedError

    def advance(self, state: dict[str, Any], now_s: float, ctx: CustomerContext) -> list[Decision]:
        """Event time reached ``now_s`` (UTC epoch s; ``inf`` = end of input): close what is final."""
        return []

    def reset(self, state: dict[str, Any], scope_kind: ScopeKind, scope_value: str) -> None:  # noqa: B027
        """Forget the evidence behind a scope (after a cleared verdict) so it does not fire again."""


def epoch(dt: datetime) -> float:
    """UTC epoch seconds of a tz-aware datetime."""
    return dt.timestamp()


def from_epoch(seconds: float) -> datetime:
    """Tz-aware UTC datetime of epoch seconds."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def iso(seconds: float) -> str:
    """ISO 8601 UTC text of epoch seconds, e.g. ``2026-01-05T09:00:00Z``."""
    return from_epoch(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")
