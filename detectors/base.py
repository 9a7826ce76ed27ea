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
from typing import Any, ClassVar, Generic, Literal, TypeVar, get_args, get_origin

from tollguard.cdr import CallDetailRecord, Direction
from tollguard.context import CustomerContext, DetectorParams, epoch, from_epoch, iso
from tollguard.events import EventType, ScopeKind

__all__ = [
    "AlertLevel",
    "CustomerContext",
    "Decision",
    "Detector",
    "DetectorParams",
    "Level",
    "customer_number",
    "epoch",
    "from_epoch",
    "iso",
    "level_decision",
    "scope_text",
]

Level = Literal["warning", "critical", "notice", "billing"]
#: The two levels of a fraud check: ``warning`` → alert, ``critical`` → suspension.
AlertLevel = Literal["warning", "critical"]

P = TypeVar("P", bound=DetectorParams)


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


def scope_text(kind: ScopeKind, value: str) -> str:
    """What a scope covers, in words for a reason sentence.

    >>> scope_text(ScopeKind.OUTBOUND_INTERNATIONAL, "acme"), scope_text(ScopeKind.ACCOUNT, "acme")
    ('outbound international calls of acme', 'every call of acme, inbound too')
    """
    return {
        ScopeKind.ACCOUNT: f"every call of {value}, inbound too",
        ScopeKind.OUTBOUND_INTERNATIONAL: f"outbound international calls of {value}",
        ScopeKind.DESTINATION_PREFIX: f"calls to {value}",
        ScopeKind.CLI: f"calls presenting CLI {value}",
        ScopeKind.DID: f"calls of DID {value}",
    }[kind]


def level_decision(
    level: AlertLevel,
    scope_kind: ScopeKind,
    scope_value: str,
    *,
    episode: str,
    occurred_at_s: float,
    reason: str,
    evidence: dict[str, Any],
    clause: str | None = None,
) -> Decision:
    """The decision of a fraud check that reached ``level``: critical → suspension, warning → alert.

    ``check`` is ``evidence["check"]`` (empty when the evidence names no check), so the
    engine's episode key and the evidence always agree.

    >>> d = level_decision("critical", ScopeKind.CLI, "+390212345678", episode="2026-01-05T09:00:00Z",
    ...                    occurred_at_s=0.0, reason="...", evidence={"check": "reward"})
    >>> str(d.type), d.level, d.check
    ('suspension', 'critical', 'reward')
    """
    return Decision(
        type=EventType.SUSPENSION if level == "critical" else EventType.ALERT,
        level=level,
        scope_kind=scope_kind,
        scope_value=scope_value,
        episode=episode,
        occurred_at_s=occurred_at_s,
        reason=reason,
        evidence=evidence,
        clause=clause,
        check=evidence.get("check", ""),
    )


def customer_number(cdr: CallDetailRecord) -> str:
    """The customer's own number in a call: the presented CLI of an outbound call, the DID of an inbound one.

    ``cdr.did`` where the adapter set it (DESIGN §3), else the caller of an outbound call
    and the callee of any other. Detectors key per-CLI and per-DID evidence on it.

    >>> from tollguard.testing import make_cdr
    >>> customer_number(make_cdr(direction="outbound", caller="+390212345678", did=None))
    '+390212345678'
    >>> customer_number(make_cdr(direction="inbound", callee="+390298765432", did=None))
    '+390298765432'
    """
    if cdr.did:
        return cdr.did
    return cdr.caller if cdr.direction is Direction.OUTBOUND else cdr.callee


class Detector(Generic[P]):
    """Base class: name, default clause, thresholds model, and the two pure steps.

    Subclasses name their thresholds model twice, as the type parameter (for
    :meth:`params`' type) and as ``params_model`` (for the rules schema), e.g.
    ``class XDetector(Detector[XParams])`` with ``params_model = XParams``; the two are
    checked to agree. They set ``name`` and ``clause`` and implement :meth:`update`
    (and :meth:`advance` when decisions depend on event time passing, not only on
    arriving CDRs).
    """

    name: ClassVar[str]
    clause: ClassVar[str]
    params_model: ClassVar[type[DetectorParams]]
    #: False for a monitor that only keeps what :meth:`report` shows (e.g. ``traffic``): it never decides.
    decides: ClassVar[bool] = True
    #: Whether the engine shows this detector the calls in progress (DESIGN §3b): on each
    #: evaluation a *copy* of its state also takes, as CDRs, every call known from its events
    #: and not yet completed by its CDR (``end`` = now for a call still up, ``billsec_s`` the
    #: talk time so far), and its decisions are emitted; the detector's own state only ever
    #: takes each call's CDR, once. Only detectors whose evidence a call still up cannot
    #: fake set it (a ringing call is no one-ring Wangiri attempt, no low ASR).
    sees_calls_in_progress: ClassVar[bool] = False
    #: Threshold values that hold on that copy instead of the customer's (e.g. ``did_concurrency``'s
    #: ``settle_s`` 0: the calls up now are all known from their events).
    in_progress_params: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = cls.__dict__.get("params_model")
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is Detector:
                (arg,) = get_args(base)
                if isinstance(arg, type) and model is not None and not issubclass(model, arg):
                    raise TypeError(
                        f"{cls.__name__}.params_model {model.__name__} is not its type parameter {arg.__name__}"
                    )

    def params(self, ctx: CustomerContext) -> P:
        """This detector's thresholds for ``ctx``'s customer (customer overrides applied).

        The rules build ``ctx.params[name]`` from ``params_model``, the model checked against ``P``.
        """
        return ctx.params[self.name]  # type: ignore[return-value]  # no cast(): one call less per CDR

    def initial_state(self) -> dict[str, Any]:
        """A fresh, empty, JSON-serialisable state for one customer."""
        return {}

    def update(self, state: dict[str, Any], cdr: CallDetailRecord, ctx: CustomerContext) -> list[Decision]:
        """Fold one CDR (event-time order) into ``state``; return the decisions it triggers."""
        raise NotImplementedError

    def advance(self, state: dict[str, Any], now_s: float, ctx: CustomerContext) -> list[Decision]:
        """Event time reached ``now_s`` (UTC epoch s; ``inf`` = end of input): close what is final."""
        return []

    def reset(self, state: dict[str, Any], scope_kind: ScopeKind, scope_value: str) -> None:
        """Forget the evidence behind a scope (after a cleared verdict) so it does not fire again."""

    def follows_in_progress(
        self, state: dict[str, Any], calls_up: list[CallDetailRecord], ctx: CustomerContext
    ) -> bool:
        """Whether any of ``calls_up`` (calls still up, as records ending now) matters to this detector now.

        Only for :attr:`sees_calls_in_progress` detectors. The engine evaluates the calls in
        progress (a copy of the state, DESIGN §3b) only for the detectors that answer True, so
        a customer's ordinary calls cost no copy. ``state`` is read, never changed. Default: any
        call up.
        """
        return bool(calls_up)

    def at_setup(
        self, state: dict[str, Any], calls_up: list[CallDetailRecord], now_s: float, ctx: CustomerContext
    ) -> list[Decision]:
        """Decisions that the calls up now give by themselves, ringing ones included (call setup).

        Called on the copy of the state that already took the calls in progress, with the
        calls still up at event time ``now_s`` (UTC epoch s; their ``end`` is ``now_s``, a
        ringing call has ``answer`` None). Only the calls-in-progress evaluation calls it: a
        rule here needs call events and never changes what CDRs alone decide. Default: none.
        """
        return []

    def report(self, state: dict[str, Any], ctx: CustomerContext) -> list[dict[str, Any]]:
        """Rows describing what the state holds now, for the NOC page (e.g. concurrency per DID).

        The page reads detectors only through this method, never their state keys.
        Default: nothing to show.
        """
        return []
