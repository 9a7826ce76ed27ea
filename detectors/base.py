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

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from tollguard.cdr import CallDetailRecord
from tollguard.context import CustomerContext, DetectorParams, epoch, from_epoch, iso
from tollguard.events import EventType, ScopeKind

__all__ = [
    "CustomerContext",
    "Decision",
    "Detector",
    "DetectorParams",
    "Level",
    "epoch",
    "from_epoch",
    "iso",
]

Level = Literal["warning", "critical", "notice", "billing"]


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
    check : str
        Which of the detector's independent checks decided (e.g. arbitrage's ``reward``,
        ``pumping``, ``high_cost``): with the scope it keys the episode, so two checks on
        one scope are two episodes. Empty for a detector with one check.
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
    check: str = ""


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

    def report(self, state: dict[str, Any], ctx: CustomerContext) -> list[dict[str, Any]]:
        """Rows describing what the state holds now, for the NOC page (e.g. concurrency per DID).

        The page reads detectors only through this method, never their state keys.
        Default: nothing to show.
        """
        return []
